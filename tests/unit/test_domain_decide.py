import itertools
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.decide import TIP_TTL, Decision, Skip, decide, decision_id_for, seed_for
from domain.features import UserFeatures, apply_decision, fold
from domain.moments import SignalTrigger, TimerFired
from domain.policies import RandomPolicy
from topics.codec import decode, encode
from topics.records import (
    ContextObserved,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
    TipDecided,
)
from topics.records import Tip as TipRecord

pytestmark = pytest.mark.unit
NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)  # 12:00 in Paris
_ids = itertools.count()


def person(**prefs) -> UserFeatures:
    state, _ = fold(None, LifecycleChanged(
        event_id=f"e{next(_ids)}", user_id="u", occurred_at=NOW - timedelta(days=3), source="t",
        change="user_created", time_zone="Europe/Paris", **prefs), "lifecycle")
    state, _ = fold(state, TaskChanged(
        event_id=f"e{next(_ids)}", user_id="u", occurred_at=NOW - timedelta(days=1), source="t",
        change="created", task_id="t1", title="Book the dentist",
        due_at=NOW + timedelta(hours=3)), "tasks")
    return state


def app_opened(state: UserFeatures, at: datetime = NOW, event_id: str | None = None):
    event = ContextObserved(event_id=event_id or f"e{next(_ids)}", user_id="u", occurred_at=at,
                            source="t", kind="app_opened")
    state, _ = fold(state, event, "context")
    return state, SignalTrigger(event, "context")


def test_a_moment_with_candidates_gives_a_decision():
    state, trigger = app_opened(person())
    decision = decide(state, trigger, NOW, policy="random")
    assert isinstance(decision, Decision)
    assert (decision.moment, decision.policy, decision.user_id) == ("app_opened", "random", "u")
    assert decision.triggered_by == trigger.trigger_id
    assert decision.expires_at == NOW + TIP_TTL and decision.decided_at == NOW
    assert decision.propensity == pytest.approx(1 / decision.context_snapshot["candidates"])


def test_the_same_trigger_gives_the_same_decision_id_and_the_same_tip():
    state, trigger = app_opened(person(), event_id="ctx-123")
    first = decide(state, trigger, NOW, policy="random")
    reloaded = UserFeatures.from_dict(json.loads(json.dumps(state.to_dict())))
    again = decide(reloaded, trigger, NOW, policy="random")
    assert first.decision_id == again.decision_id == decision_id_for("ctx-123")
    assert first.tip == again.tip and first.seed == again.seed == seed_for(first.decision_id)
    assert first.context_snapshot == again.context_snapshot


def test_different_triggers_give_different_decision_ids_and_varied_tips():
    state = person()
    decisions = []
    for i in range(40):
        folded, trigger = app_opened(state, event_id=f"ctx-{i}")
        decisions.append(decide(folded, trigger, NOW, policy="random"))
    assert len({d.decision_id for d in decisions}) == 40
    assert len({d.tip.id for d in decisions}) > 5


def test_a_timer_trigger_gives_a_decision_id_from_the_timer_and_its_fire_time():
    timer = TimerFired("morning_start:abc", "morning_start", NOW)
    decision = decide(person(), timer, NOW, policy="random")
    assert decision.decision_id == decision_id_for(f"timer:morning_start:abc:{int(NOW.timestamp())}")
    assert decision.moment == "morning_start"


def test_no_decision_in_quiet_hours():
    late = datetime(2026, 5, 4, 21, 30, tzinfo=UTC)  # 23:30 in Paris
    state, trigger = app_opened(person(), at=late)
    skip = decide(state, trigger, late, policy="random")
    assert isinstance(skip, Skip)
    assert (skip.stage, skip.guard, skip.moment) == ("guard", "quiet_hours", "app_opened")
    assert str(skip).startswith("skip: quiet_hours: 23:30 local")
    assert skip.decision_id == decision_id_for(trigger.trigger_id)


def test_no_decision_over_the_daily_budget():
    state = person(daily_budget=1)
    state, _ = apply_decision(state, "d0", "advice:x", "advice", NOW - timedelta(hours=3),
                              NOW - timedelta(hours=2))
    state, trigger = app_opened(state)
    skip = decide(state, trigger, NOW, policy="random")
    assert isinstance(skip, Skip) and skip.guard == "daily_budget"
    assert "1 of 1" in skip.reason


def test_no_decision_without_a_moment():
    state = person()
    event = MoodLogged(event_id="m", user_id="u", occurred_at=NOW, source="t", score=1)
    state, _ = fold(state, event, "mood")
    skip = decide(state, SignalTrigger(event, "mood"), NOW, policy="random")
    assert isinstance(skip, Skip) and skip.stage == "moment" and skip.guard is None
    assert str(skip) == "skip: moment: mood 1 is not low"


def test_no_decision_without_a_candidate():
    state, trigger = app_opened(person(kinds=[]))
    skip = decide(state, trigger, NOW, policy="random")
    assert isinstance(skip, Skip) and skip.stage == "candidates"


def test_a_policy_that_picks_nothing_is_a_skip():
    @dataclass(frozen=True)
    class Silent:
        name: str = "silent"

        def pick(self, features, candidates, moment, seed, at=None):
            return None

    state, trigger = app_opened(person())
    skip = decide(state, trigger, NOW, policy=Silent())
    assert isinstance(skip, Skip) and skip.stage == "policy" and "silent" in skip.reason


def test_the_reason_says_why_now_and_what_was_picked():
    state, trigger = app_opened(person())
    decision = decide(state, trigger, NOW, policy="random")
    assert decision.reason.startswith("app_opened: the app was just opened; random picked")
    assert decision.tip.title in decision.reason and len(decision.reason) <= 500


def test_the_context_snapshot_is_compact_json():
    state, trigger = app_opened(person())
    snapshot = decide(state, trigger, NOW, policy="random").context_snapshot
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["local_time"] == "2026-05-04T12:00+0200"
    assert (snapshot["open_todos"], snapshot["next_due_in_min"]) == (1, 180)
    assert snapshot["guards_passed"][0] == "deletion" and snapshot["busy"] is False
    assert len(json.dumps(snapshot)) < 2000


def test_shadow_policies_are_recorded_never_sent_and_cannot_break_the_decision():
    @dataclass(frozen=True)
    class Broken:
        name: str = "broken"

        def pick(self, features, candidates, moment, seed, at=None):
            raise RuntimeError("model not loaded")

    state, trigger = app_opened(person())
    decision = decide(state, trigger, NOW, policy="random",
                      shadow_policies=[RandomPolicy(name="random-shadow"), Broken()])
    shadow = decision.shadow["random-shadow"]
    assert shadow.tip_id is not None and shadow.propensity == decision.propensity
    assert decision.shadow["broken"].error == "RuntimeError: model not loaded"
    assert decision.context_snapshot["shadow"]["random-shadow"]["tip_id"] == shadow.tip_id
    assert decision.policy == "random"


def test_a_decision_is_a_valid_tip_decided_record():
    state, trigger = app_opened(person())
    decision = decide(state, trigger, NOW, policy="random")
    fields = decision.record_fields()
    record = TipDecided(event_id=decision.decision_id, user_id=decision.user_id, occurred_at=NOW,
                        source="oo.engine", **{**fields, "tip": TipRecord(**fields["tip"])})
    assert decode(TipDecided, encode(record)) == record


def test_deciding_then_applying_blocks_the_next_moment_by_spacing_and_the_tip_on_screen():
    state, trigger = app_opened(person())
    decision = decide(state, trigger, NOW, policy="random")
    state, _ = apply_decision(state, decision.decision_id, decision.tip.id, decision.tip.kind,
                              decision.decided_at, decision.expires_at)
    later = NOW + timedelta(minutes=10)
    state, trigger = app_opened(state, at=later)
    skip = decide(state, trigger, later, policy="random")
    assert isinstance(skip, Skip) and skip.guard == "spacing"


def test_no_decision_after_deletion_was_requested():
    state, trigger = app_opened(replace(person(), deletion_requested=True))
    skip = decide(state, trigger, NOW, policy="random")
    assert isinstance(skip, Skip) and skip.guard == "deletion"


def test_a_redelivered_trigger_whose_decision_was_recorded_is_a_duplicate_skip():
    state, trigger = app_opened(person())
    decision = decide(state, trigger, NOW, policy="random")
    recorded, _ = apply_decision(state, decision.decision_id, decision.tip.id, decision.tip.kind,
                                 NOW, decision.expires_at)
    skip = decide(recorded, trigger, NOW + timedelta(seconds=5), policy="random")
    assert isinstance(skip, Skip) and skip.stage == "duplicate"
    assert skip.decision_id == decision.decision_id


def test_a_redelivered_trigger_not_yet_recorded_reproduces_the_decision_a_little_later():
    state, trigger = app_opened(person())
    first = decide(state, trigger, NOW, policy="random")
    again = decide(state, trigger, NOW + timedelta(seconds=30), policy="random")
    assert (again.decision_id, again.tip) == (first.decision_id, first.tip)
