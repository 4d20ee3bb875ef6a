"""The engine's pure step: state and one event in, state and effects out (no Kafka, no IO)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from domain.decide import decision_id_for
from domain.features import apply_decision
from domain.step import (
    Config,
    Count,
    Person,
    Reacted,
    Resend,
    SendDecision,
    SendReaction,
    Signalled,
    TimerCommanded,
    TimerDue,
    Unconfirmed,
    step,
)
from domain.timers import FORGET, TimerCommand
from topics.records import ContextObserved, FeedbackGiven, LifecycleChanged, TaskChanged

pytestmark = pytest.mark.unit
NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)  # a Monday, 12:00 in Paris
CONFIG = Config("random", (), forget_window_s=600)
_ids = itertools.count()


def signal(domain: str, record) -> Signalled:
    return Signalled(record, domain)


def created(at: datetime = NOW - timedelta(days=1)) -> Signalled:
    return signal("lifecycle", LifecycleChanged(
        event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
        change="user_created", time_zone="Europe/Paris"))


def opened(at: datetime = NOW, event_id: str | None = None) -> Signalled:
    return signal("context", ContextObserved(
        event_id=event_id or f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
        kind="app_opened"))


def task(change: str, task_id: str = "t1", at: datetime = NOW - timedelta(hours=2)) -> Signalled:
    return signal("tasks", TaskChanged(
        event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t", change=change,
        task_id=task_id, title="Book the dentist", due_at=NOW + timedelta(hours=3), priority=4))


def deleted() -> Signalled:
    return signal("lifecycle", LifecycleChanged(
        event_id=f"e{next(_ids)}", user_id="u", occurred_at=NOW, source="t",
        change="deletion_requested"))


def answered(decision_id: str, reaction: str, tip_id: str = "?") -> Reacted:
    return Reacted(FeedbackGiven(event_id=f"e{next(_ids)}", user_id="u", occurred_at=NOW,
                                 source="t", decision_id=decision_id, tip_id=tip_id,
                                 reaction=reaction))


def run(person: Person, *events, now: datetime = NOW) -> tuple[Person, list]:
    effects: list = []
    for event in events:
        done = step(person, event, now, CONFIG)
        person = done.person
        effects.extend(done.effects)
    return person, effects


def of(kind, effects) -> list:
    return [e for e in effects if isinstance(e, kind)]


def signed_up() -> Person:
    person, _ = run(Person("u"), created(), task("created"))
    return person


def test_an_app_opening_gives_a_decision_recorded_in_the_state_and_an_expiry_timer():
    person, effects = run(signed_up(), opened(event_id="o1"))
    (send,) = of(SendDecision, effects)
    assert send.decision.decision_id == decision_id_for("o1")
    assert person.features is not None and person.features.showing is not None
    assert person.features.showing.decision_id == send.decision.decision_id
    expiry = [c for c in of(TimerCommand, effects) if c.purpose == "tip_expired"]
    assert expiry and expiry[0].timer_id in person.timers
    assert Count("oo_decisions_total", "moment", "app_opened") in effects


def test_a_duplicate_signal_changes_nothing_and_only_asks_to_resend_the_unconfirmed():
    first = run(signed_up(), opened(event_id="o1"))[0]
    pending = Person(first.user_id, first.features, None, first.timers,
                     (Unconfirmed(decision_id_for("o1"), "{}"),))
    done = step(pending, opened(event_id="o1"), NOW, CONFIG)
    assert done.person is pending, "a duplicate must leave the very same state"
    assert of(Resend, done.effects) == [Resend(pending.outbox[0])]
    assert not of(SendDecision, done.effects)


def test_the_same_events_give_the_same_decision_and_the_same_tip():
    one = of(SendDecision, run(signed_up(), opened(event_id="o7"))[1])[0].decision
    two = of(SendDecision, run(signed_up(), opened(event_id="o7"))[1])[0].decision
    assert (one.decision_id, one.tip.id) == (two.decision_id, two.tip.id)


def test_a_tip_that_expires_unanswered_is_answered_ignored_on_the_persons_behalf():
    person, effects = run(signed_up(), opened())
    decision = of(SendDecision, effects)[0].decision
    (timer_id, (purpose, fire_at, ref)), = [(k, v) for k, v in person.timers.items()
                                           if v[0] == "tip_expired"]
    due = TimerDue(timer_id, purpose, datetime.fromtimestamp(fire_at, UTC), ref)
    later, effects = run(person, due, now=decision.expires_at)
    (reaction,) = of(SendReaction, effects)
    assert (reaction.decision_id, reaction.reaction) == (decision.decision_id, "ignored")
    assert later.features is not None and later.features.showing is None
    assert timer_id not in later.timers
    again = step(later, due, decision.expires_at, CONFIG)  # a repeated firing: stale
    assert again.person is later and Count("oo_timers_stale_total", "purpose",
                                           "tip_expired") in again.effects


def test_a_reaction_closes_the_tip_and_a_repeat_is_a_duplicate():
    person, effects = run(signed_up(), opened())
    decision = of(SendDecision, effects)[0].decision
    closed, effects = run(person, answered(decision.decision_id, "dismiss", decision.tip.id))
    assert closed.features is not None and closed.features.showing is None
    assert Count("oo_feedback_total", "reaction", "dismiss") in effects
    done = step(closed, answered(decision.decision_id, "dismiss", decision.tip.id), NOW, CONFIG)
    assert done.person is closed
    assert Count("oo_feedback_duplicate_total", "reaction", "dismiss") in done.effects


def test_completing_the_todo_on_screen_at_its_source_answers_its_tip_done():
    person = signed_up()
    assert person.features is not None
    showing, _ = apply_decision(person.features, "d1", "todo:t1", "todo", NOW,
                                NOW + timedelta(hours=4))
    _, effects = run(Person("u", showing, None, person.timers),
                     task("completed", at=NOW + timedelta(minutes=5)))
    (done,) = of(SendReaction, effects)
    assert (done.decision_id, done.tip_id, done.reaction) == ("d1", "todo:t1", "done")
    _, effects = run(Person("u", showing, None, person.timers),
                     task("completed", task_id="t2", at=NOW + timedelta(minutes=5)))
    assert not of(SendReaction, effects), "another todo's completion answers nothing"


def test_deletion_leaves_a_marker_and_a_purge_timer_then_nobody():
    person, effects = run(signed_up(), opened(), deleted())
    assert person.features is None and person.forgotten_at == int(NOW.timestamp())
    assert person.outbox == () and set(person.timers) == {c.timer_id for c in
                                                           of(TimerCommand, effects)
                                                           if c.purpose == FORGET}
    (timer_id, (purpose, fire_at, ref)), = person.timers.items()
    assert fire_at == NOW.timestamp() + CONFIG.forget_window_s
    late, effects = run(person, opened(), answered("d", "done"),
                        TimerCommanded(TimerCommand("set", "morning_start:x", "morning_start",
                                                    NOW + timedelta(days=1))))
    assert late == person and not of(SendDecision, effects) and not of(Resend, effects)
    gone, effects = run(person, TimerDue(timer_id, purpose, datetime.fromtimestamp(fire_at, UTC)))
    assert gone == Person("u") and Count("oo_users_purged_total") in effects


def test_a_deletion_asks_for_no_resend_of_what_was_unconfirmed():
    person = signed_up()
    pending = Person("u", person.features, None, person.timers, (Unconfirmed("d1", "{}"),))
    _, effects = run(pending, deleted())
    assert not of(Resend, effects)
