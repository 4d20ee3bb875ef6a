"""Learned timing: the guard that holds pushes back at hours a person does not answer."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from domain.decide import Decision, Skip, decide
from domain.features import UserFeatures, apply_decision, apply_feedback, fold
from domain.guards import TIMING_FLOOR, learned_timing
from domain.moments import SignalTrigger, TimerFired
from domain.policies import BanditPolicy, RandomPolicy
from topics.records import ContextObserved, LifecycleChanged

pytestmark = pytest.mark.unit
MONDAY_8 = datetime(2026, 5, 4, 6, tzinfo=UTC)  # 08:00 in Paris
_ids = itertools.count()


def person() -> UserFeatures:
    state, _ = fold(None, LifecycleChanged(
        event_id="l", user_id="u", occurred_at=MONDAY_8 - timedelta(days=10), source="t",
        change="user_created", time_zone="Europe/Paris", quiet_start_minute=22 * 60,
        quiet_end_minute=7 * 60), "lifecycle")
    return state


def answered(state, at, reaction, moment="morning_start"):
    decision_id = f"d{next(_ids)}"
    state, _ = apply_decision(state, decision_id, "advice:x", "advice", at,
                              at + timedelta(hours=4), moment=moment, group="advice:water",
                              policy="bandit")
    state, _ = apply_feedback(state, decision_id, reaction, at + timedelta(hours=4))
    return state


def ignored_mornings(days=4):
    state = person()
    for day in range(days):
        state = answered(state, MONDAY_8 - timedelta(days=days - day), "ignored")
    return state


def test_without_evidence_every_moment_passes():
    verdict = learned_timing(person(), MONDAY_8.timestamp(), "morning_start")
    assert verdict.passed and verdict.name == "learned_timing"


def test_pushes_are_held_back_at_an_hour_the_person_keeps_ignoring():
    verdict = learned_timing(ignored_mornings(), MONDAY_8.timestamp(), "morning_start")
    assert not verdict.passed
    assert "around Mon 08:00" in verdict.reason and f"{TIMING_FLOOR:.0%}" in verdict.reason


def test_an_hour_the_person_answers_stays_open():
    state = person()
    for day in range(4):
        state = answered(state, MONDAY_8 - timedelta(days=4 - day), "ack")
    assert learned_timing(state, MONDAY_8.timestamp(), "morning_start").passed


def test_a_person_at_their_device_is_never_held_back():
    state = ignored_mornings()
    assert learned_timing(state, MONDAY_8.timestamp(), "app_opened").passed


def test_a_distant_hour_is_not_held_back_by_a_bad_morning():
    evening = MONDAY_8 + timedelta(hours=12)
    assert learned_timing(ignored_mornings(), evening.timestamp(), "morning_start").passed


def test_held_back_hours_reopen_as_the_evidence_fades():
    later = MONDAY_8 + timedelta(days=120)
    assert learned_timing(ignored_mornings(), later.timestamp(), "morning_start").passed


def test_a_policy_with_learned_timing_stays_quiet_and_logs_the_point():
    state = ignored_mornings()
    timer = TimerFired("morning_start:x", "morning_start", MONDAY_8)
    skip = decide(state, timer, MONDAY_8, policy=BanditPolicy())
    assert isinstance(skip, Skip) and skip.guard == "learned_timing"
    assert skip.propensity == 1.0 and skip.point["chosen"] == "quiet"
    assert skip.point["p"] == {"bandit": [1.0, {"quiet": 1.0}]}


def test_the_baseline_at_fixed_moments_ignores_learned_timing():
    state = ignored_mornings()
    timer = TimerFired("morning_start:x", "morning_start", MONDAY_8)
    assert isinstance(decide(state, timer, MONDAY_8, policy="random"), Decision)
    held = decide(state, timer, MONDAY_8, policy=RandomPolicy("random+timing", learned_timing=True))
    assert isinstance(held, Skip) and held.guard == "learned_timing"


def test_a_held_back_shadow_says_quiet_while_the_live_policy_speaks():
    state = ignored_mornings()
    timer = TimerFired("morning_start:x", "morning_start", MONDAY_8)
    decision = decide(state, timer, MONDAY_8, policy="random", shadow_policies=["bandit"])
    assert isinstance(decision, Decision)
    assert decision.shadow["bandit"].tip_id is None and decision.shadow["bandit"].propensity == 1.0
    assert decision.context_snapshot["point"]["p"]["bandit"] == [0.0, {"quiet": 1.0}]


def test_quiet_hours_always_win_over_learned_timing():
    state = person()
    for day in range(4):  # the person always answers at 23:00
        state = answered(state, MONDAY_8 + timedelta(hours=15) - timedelta(days=4 - day), "ack",
                         moment="todo_due_soon")
    late = MONDAY_8 + timedelta(hours=15)  # 23:00 in Paris, inside quiet hours
    event = ContextObserved(event_id="c", user_id="u", occurred_at=late, source="t",
                            kind="app_opened")
    state, _ = fold(state, event, "context")
    skip = decide(state, SignalTrigger(event, "context"), late, policy="bandit")
    assert isinstance(skip, Skip) and skip.guard == "quiet_hours"
