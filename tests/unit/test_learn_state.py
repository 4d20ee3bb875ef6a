"""Per-user learned statistics: folded from answers, bounded, decayed, and upgrade-safe."""

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from agents.state import dump_state, load_state
from domain.features import (
    FORMAT_VERSION,
    UserFeatures,
    apply_decision,
    apply_feedback,
    fold,
    record_quiet,
)
from domain.learning import (
    LEARN_HALF_LIFE_S,
    MAX_QUIET,
    MAX_SENT,
    PRESENT,
    Learned,
    Sent,
    hour_of_week,
    timing_bucket,
)
from topics.records import LifecycleChanged

pytestmark = pytest.mark.unit
T0 = datetime(2026, 5, 4, 7, tzinfo=UTC)  # Monday 09:00 in Paris
# A features table value written by the previous version (format 2, before learning).
V2_STATE = (
    '{"v":2,"user_id":"u","last_activity_at":1777885200,"last_app_open_at":1777885200,'
    '"signals_by_domain":{"lifecycle":1,"tasks":2,"habits":1,"calendar":1,"mood":1,"context":1},'
    '"recent_event_ids":["e0","e1","e2","e3","e4","e5","e6"],'
    '"todos":[["T1","Pay rent",1777896000,1,1777885200]],'
    '"habits":[["H1","Read",660,1,"2026-05-04",null,1777885200]],'
    '"calendar":[["C1",1777888800,1777892400,true,1777885200]],'
    '"tombstones":[["task:T0",1777885200]],"mood_score":-1,"mood_at":1777885200,'
    '"prefs":["Europe/Paris",1320,420,3,["todo","advice"],1775293200],'
    '"deletion_requested":false,"tips_today":1,"tips_day":"2026-05-04",'
    '"last_tip_at":1777885200,"showing":null,"recent_tips":[["d1","advice:x","advice",1777885200]],'
    '"reactions":[["d1","advice:x","dismiss",1777885200]],"fatigue":1.0,"fatigue_at":1777885200}'
)


def paris() -> UserFeatures:
    state, _ = fold(None, LifecycleChanged(
        event_id="l", user_id="u", occurred_at=T0 - timedelta(days=3), source="t",
        change="user_created", time_zone="Europe/Paris"), "lifecycle")
    return state


def given(state, decision_id="d1", moment="morning_start", group="advice:water", at=T0,
          policy="bandit"):
    state, _ = apply_decision(state, decision_id, f"advice:{decision_id}", "advice", at,
                              at + timedelta(hours=4), moment=moment, group=group, policy=policy)
    return state


def test_a_state_written_by_the_previous_version_loads_with_empty_learning():
    state = load_state(V2_STATE.encode())
    assert state.learned == Learned() and not state.learned
    assert state.todos[0].title == "Pay rent" and state.prefs.time_zone == "Europe/Paris"
    assert state.recent_tips[0].tip_id == "advice:x" and state.fatigue == 1.0
    upgraded = load_state(dump_state(state))
    assert upgraded == state and orjson.loads(dump_state(state))["v"] == FORMAT_VERSION == 3


def test_a_previous_version_state_keeps_working_with_decisions_and_answers():
    state = load_state(V2_STATE.encode())
    state = given(state, "d2", at=T0 + timedelta(hours=2))
    state, changed = apply_feedback(state, "d2", "ack", T0 + timedelta(hours=2, minutes=5))
    assert changed and state.learned.tally("advice:water", T0.timestamp()).answers == 1.0


def test_learned_statistics_survive_the_table_representation():
    state = given(paris())
    state, _ = apply_feedback(state, "d1", "done", T0 + timedelta(minutes=3))
    state = record_quiet(state, "q1", T0 + timedelta(hours=2), {"chosen": "quiet", "p": {}})
    back = UserFeatures.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state and back.learned.quiet()[0][0] == "q1"
    assert load_state(dump_state(state)) == state


def test_a_given_tip_is_remembered_with_its_timing_bucket_and_group():
    state = given(paris())
    (sent,) = state.learned.sent()
    # Monday 09:00 in Paris: hour of week 9; a timer moment is a push.
    assert sent == Sent("d1", "advice:water", str(hour_of_week(0, 9)), "bandit", int(T0.timestamp()))
    at_device = given(paris(), moment="app_opened")
    assert at_device.learned.sent()[0].bucket == PRESENT


def test_a_decision_without_learning_context_is_not_remembered():
    state, _ = apply_decision(paris(), "d1", "advice:x", "advice", T0, T0 + timedelta(hours=4))
    assert state.learned.sent() == ()


def test_an_answer_is_credited_to_timing_and_content_once():
    state = given(paris())
    state, _ = apply_feedback(state, "d1", "ack", T0 + timedelta(minutes=10))
    at = T0.timestamp() + 600
    rates = state.learned.rates()
    assert rates[str(hour_of_week(0, 9))] == (1.0, 1.0)
    assert state.learned.tally("advice:water", at) == (1.0, 0.8)
    assert state.learned.sent() == ()
    again, changed = apply_feedback(state, "d1", "ack", T0 + timedelta(minutes=11))
    assert not changed and again.learned == state.learned


def test_an_ignored_tip_teaches_timing_but_not_content():
    state = given(paris())
    state, _ = apply_feedback(state, "d1", "ignored", T0 + timedelta(hours=4))
    assert state.learned.rates()[str(hour_of_week(0, 9))] == (1.0, 0.0)
    assert state.learned.tallies() == {}


def test_seen_and_delivered_change_no_statistics():
    state = given(paris())
    for reaction in ("delivered", "seen"):
        state, _ = apply_feedback(state, "d1", reaction, T0 + timedelta(minutes=1))
    assert state.learned.rates() == {} and len(state.learned.sent()) == 1


def test_evidence_halves_every_half_life():
    state = given(paris())
    state, _ = apply_feedback(state, "d1", "dismiss", T0)
    later = T0 + timedelta(seconds=LEARN_HALF_LIFE_S)
    assert state.learned.tally("advice:water", later.timestamp()).answers == pytest.approx(0.5)
    state = given(state, "d2", at=later)
    state, _ = apply_feedback(state, "d2", "dismiss", later)
    assert state.learned.tally("advice:water", later.timestamp()) == pytest.approx((1.5, -0.6))


def test_the_tips_waiting_for_answers_and_the_quiet_log_are_bounded():
    state = paris()
    for i in range(MAX_SENT + 5):
        state = given(state, f"d{i}", at=T0 + timedelta(minutes=i))
    assert [s.decision_id for s in state.learned.sent()] == [f"d{i}" for i in range(5, MAX_SENT + 5)]
    for i in range(MAX_QUIET + 3):
        state = record_quiet(state, f"q{i}", T0 + timedelta(hours=i), {"chosen": "quiet"})
    assert len(state.learned.quiet()) == MAX_QUIET and state.learned.quiet_dropped == 3


def test_the_quiet_log_is_idempotent_and_cleared_by_the_next_tip():
    state = record_quiet(paris(), "q1", T0, {"chosen": "quiet"})
    assert record_quiet(state, "q1", T0, {"chosen": "quiet"}) == state
    state = given(state, "d1", at=T0 + timedelta(hours=1))
    assert state.learned.quiet() == () and state.learned.quiet_dropped == 0


def test_hour_of_week_evidence_is_shared_with_the_same_hour_on_other_days():
    learned = Learned()
    for day in range(3):  # ignored on Monday, Tuesday, Wednesday at 08:00
        bucket = timing_bucket("morning_start", day, 8)
        learned = learned.with_sent(Sent(f"d{day}", "todo", bucket, "bandit", 0))
        learned, _ = learned.with_answer(f"d{day}", "ignored", 0)
    thursday, saturday = learned.answer_evidence("80", 0), learned.answer_evidence("128", 0)
    assert thursday.sent > saturday.sent > 0 and thursday.answered == 0
    assert learned.answer_odds("80", 0).mean < learned.answer_odds("92", 0).mean  # 20:00 is far
    assert learned.answer_odds(PRESENT, 0).evidence == 0
