import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.features import (
    CalendarEvent,
    Preferences,
    Rows,
    ShowingTip,
    UserFeatures,
    apply_decision,
    apply_feedback,
    fold,
)
from domain.guards import GUARD_NAMES
from domain.moments import MOMENTS, SignalTrigger, TimerFired, detect
from topics.records import (
    CalendarChanged,
    ContextObserved,
    HabitLogged,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
)

pytestmark = pytest.mark.unit
NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)  # Monday 12:00 in Paris
_ids = itertools.count()


def signal(record_type, domain, at=NOW, **fields):
    event = record_type(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                        **fields)
    return event, domain


def person(*signals) -> UserFeatures:
    state, _ = fold(None, *signal(LifecycleChanged, "lifecycle", at=NOW - timedelta(days=9),
                                  change="user_created", time_zone="Europe/Paris"))
    for event, domain in signals:
        state, _ = fold(state, event, domain)
    return state


def on_signal(record_type, domain, state=None, at=NOW, **fields):
    """Fold the signal into `state` (like the agent does) and detect at NOW."""
    event, domain = signal(record_type, domain, at=at, **fields)
    state, _ = fold(state or person(), event, domain)
    return detect(state, SignalTrigger(event, domain), NOW)


def timer(purpose, ref=None, fire_at=NOW):
    return TimerFired(f"{purpose}:t", purpose, fire_at, ref)


def meeting(cal_id, start, minutes, busy=True):
    return signal(CalendarChanged, "calendar", at=NOW - timedelta(days=1), change="scheduled",
                  calendar_event_id=cal_id, starts_at=start,
                  ends_at=start + timedelta(minutes=minutes), busy=busy)


# --- app opened, free after a meeting -------------------------------------------


def test_opening_the_app_is_a_moment_when_every_guard_passes():
    verdict = on_signal(ContextObserved, "context", kind="app_opened")
    assert verdict.moment.name == "app_opened" and verdict.blocked_by is None
    assert verdict.passed == GUARD_NAMES
    assert verdict.why.startswith("app_opened:")


@pytest.mark.parametrize("kind", ["page_visible", "page_hidden", "device_idle", "device_active"])
def test_other_context_alone_is_no_moment(kind):
    verdict = on_signal(ContextObserved, "context", kind=kind)
    assert verdict.moment is None and verdict.detected is None
    assert verdict.why.startswith("no moment:")


@pytest.mark.parametrize("kind", ["app_opened", "page_visible", "device_active"])
def test_being_at_the_device_just_after_a_meeting_is_free_after_meeting(kind):
    state = person(meeting("standup", NOW - timedelta(minutes=40), 35))
    verdict = on_signal(ContextObserved, "context", state, kind=kind)
    assert verdict.moment.name == "free_after_meeting" and verdict.moment.ref == "standup"
    assert "5 min ago" in verdict.moment.detail


@pytest.mark.parametrize("kind", ["page_hidden", "device_idle"])
def test_leaving_the_device_after_a_meeting_is_no_moment(kind):
    state = person(meeting("standup", NOW - timedelta(minutes=40), 35))
    assert on_signal(ContextObserved, "context", state, kind=kind).detected is None


def test_a_calendar_signal_right_after_a_meeting_is_free_after_meeting():
    verdict = on_signal(CalendarChanged, "calendar", change="updated", calendar_event_id="m",
                        starts_at=NOW - timedelta(hours=1), ends_at=NOW - timedelta(minutes=2))
    assert verdict.moment.name == "free_after_meeting"


def test_a_meeting_that_ended_long_ago_makes_no_free_after_meeting_moment():
    state = person(meeting("m", NOW - timedelta(hours=1), 40))  # ended 20 min ago
    verdict = on_signal(ContextObserved, "context", state, kind="device_active")
    assert verdict.detected is None and "no meeting just ended" in verdict.no_moment


def test_a_short_gap_before_the_next_meeting_is_not_free_time():
    state = person(meeting("a", NOW - timedelta(minutes=30), 25),
                   meeting("b", NOW + timedelta(minutes=10), 30))
    verdict = on_signal(ContextObserved, "context", state, kind="device_active")
    assert verdict.detected is None and "10 min free" in verdict.no_moment


def test_opening_the_app_after_a_short_gap_is_still_app_opened():
    state = person(meeting("a", NOW - timedelta(minutes=30), 25),
                   meeting("b", NOW + timedelta(minutes=10), 30))
    assert on_signal(ContextObserved, "context", state, kind="app_opened").detected.name == \
        "app_opened"


def test_a_non_busy_event_ending_is_not_a_meeting_ending():
    state = person(meeting("lunch", NOW - timedelta(minutes=40), 35, busy=False))
    assert on_signal(ContextObserved, "context", state, kind="device_active").detected is None


def test_no_free_after_meeting_moment_while_in_another_meeting():
    state = person(meeting("a", NOW - timedelta(minutes=30), 25),
                   meeting("b", NOW - timedelta(minutes=10), 60))
    verdict = on_signal(ContextObserved, "context", state, kind="device_active")
    assert verdict.detected is None and "busy" in verdict.no_moment


# --- low mood ----------------------------------------------------------------------


@pytest.mark.parametrize(("score", "moment"), [(-2, "low_mood"), (-1, "low_mood"), (0, None),
                                               (2, None)])
def test_a_low_mood_is_a_moment(score, moment):
    verdict = on_signal(MoodLogged, "mood", score=score)
    assert (verdict.detected.name if verdict.detected else None) == moment


def test_a_late_low_mood_behind_a_newer_one_is_no_moment():
    state = person(signal(MoodLogged, "mood", at=NOW - timedelta(minutes=1), score=2))
    verdict = on_signal(MoodLogged, "mood", state, at=NOW - timedelta(minutes=5), score=-2)
    assert verdict.detected is None and "newer mood" in verdict.no_moment


# --- signals that make no moment, stale signals --------------------------------------


@pytest.mark.parametrize(("record_type", "domain", "fields"), [
    (TaskChanged, "tasks", {"change": "created", "task_id": "t", "title": "x"}),
    (HabitLogged, "habits", {"change": "done", "habit_id": "h"}),
    (LifecycleChanged, "lifecycle", {"change": "preferences_changed", "daily_budget": 2}),
])
def test_tasks_habits_and_lifecycle_signals_make_no_moment_by_themselves(record_type, domain,
                                                                          fields):
    verdict = on_signal(record_type, domain, **fields)
    assert verdict.detected is None and domain in verdict.no_moment


def test_an_old_signal_is_history_not_a_moment():
    verdict = on_signal(ContextObserved, "context", at=NOW - timedelta(minutes=20),
                        kind="app_opened")
    assert verdict.detected is None and "20 min old" in verdict.no_moment


# --- timers --------------------------------------------------------------------------


def test_the_morning_timer_is_the_morning_start_moment():
    verdict = detect(person(), timer("morning_start"), NOW)
    assert verdict.moment.name == "morning_start" and "12:00 local" in verdict.moment.detail


def test_a_timer_that_fires_much_too_late_is_no_moment():
    verdict = detect(person(), timer("morning_start", fire_at=NOW - timedelta(hours=2)), NOW)
    assert verdict.detected is None and "late" in verdict.no_moment


def test_tip_expiry_and_unknown_timers_are_no_moments():
    assert detect(person(), timer("tip_expired", "d1"), NOW).detected is None
    assert "unknown" in detect(person(), timer("full_moon"), NOW).no_moment


def habit_signal(change, at=NOW - timedelta(days=2), **fields):
    return signal(HabitLogged, "habits", at=at, change=change, habit_id="h1", **fields)


def test_the_habit_timer_is_a_moment_when_the_habit_is_not_done_today():
    state = person(habit_signal("defined", name="Stretch", usual_minute=12 * 60),
                   habit_signal("done", at=NOW - timedelta(days=1)))
    verdict = detect(state, timer("habit_window", "h1"), NOW)
    assert verdict.moment.name == "habit_window" and verdict.moment.ref == "h1"
    assert "Stretch" in verdict.moment.detail and "streak 1" in verdict.moment.detail


@pytest.mark.parametrize("change", ["done", "skipped"])
def test_the_habit_timer_is_no_moment_once_done_or_skipped_today(change):
    state = person(habit_signal("defined", name="Stretch", usual_minute=12 * 60),
                   habit_signal(change, at=NOW - timedelta(hours=1)))
    assert detect(state, timer("habit_window", "h1"), NOW).detected is None


def test_the_habit_timer_of_a_removed_habit_is_no_moment():
    state = person(habit_signal("defined", name="x"), habit_signal("removed", at=NOW))
    assert "no longer exists" in detect(state, timer("habit_window", "h1"), NOW).no_moment


def task_signal(change, due_in=None, **fields):
    due = NOW + due_in if due_in is not None else None
    return signal(TaskChanged, "tasks", at=NOW - timedelta(hours=1), change=change,
                  task_id="t1", due_at=due, **fields)


def test_the_todo_timer_is_a_moment_when_the_todo_is_due_soon():
    state = person(task_signal("created", timedelta(minutes=30), title="Call the bank"))
    verdict = detect(state, timer("todo_due_soon", "t1"), NOW)
    assert verdict.moment.name == "todo_due_soon" and verdict.moment.ref == "t1"
    assert "Call the bank is due in 30 min" == verdict.moment.detail


@pytest.mark.parametrize(("signals", "why"), [
    ([("created", timedelta(days=1))], "not due soon"),
    ([("created", timedelta(minutes=-5))], "not due soon"),
    ([("created", None)], "no longer has a due time"),
    ([("created", timedelta(minutes=30)), ("completed", None)], "no longer open"),
])
def test_the_todo_timer_is_no_moment_when_the_todo_moved_or_closed(signals, why):
    state = person(*(task_signal(change, due, title="x") for change, due in signals))
    verdict = detect(state, timer("todo_due_soon", "t1"), NOW)
    assert verdict.detected is None and why in verdict.no_moment


def test_every_moment_has_a_rule_that_produces_it():
    produced = {
        on_signal(ContextObserved, "context", kind="app_opened").detected.name,
        on_signal(MoodLogged, "mood", score=-2).detected.name,
        on_signal(CalendarChanged, "calendar", change="updated", calendar_event_id="m",
                  starts_at=NOW - timedelta(hours=1), ends_at=NOW).detected.name,
        detect(person(), timer("morning_start"), NOW).detected.name,
        detect(person(habit_signal("defined", name="x")), timer("habit_window", "h1"),
               NOW).detected.name,
        detect(person(task_signal("created", timedelta(minutes=20), title="x")),
               timer("todo_due_soon", "t1"), NOW).detected.name,
    }
    assert produced == set(MOMENTS)


# --- guards through detect -------------------------------------------------------------


def violating(guard: str) -> UserFeatures:
    """A person at NOW (12:00 Paris) who fails exactly `guard`."""
    base = person()
    at = NOW
    if guard == "deletion":
        return replace(base, deletion_requested=True)
    if guard == "profile":
        return replace(base, prefs=base.prefs._replace(changed_at=None))
    if guard == "quiet_hours":
        return replace(base, prefs=base.prefs._replace(quiet_start_minute=11 * 60,
                                                       quiet_end_minute=13 * 60))
    if guard == "daily_budget":
        return replace(base, prefs=base.prefs._replace(daily_budget=0))
    if guard == "spacing":
        state, _ = apply_decision(base, "d", "advice:x", "advice", at - timedelta(minutes=30), at)
        return state
    if guard == "fatigue":
        for i in range(2):
            base, _ = apply_feedback(base, f"d{i}", "dismiss", at - timedelta(minutes=5))
        return base
    if guard == "busy":
        t = int(at.timestamp())
        return replace(base, calendar=Rows.of(CalendarEvent, [CalendarEvent("c", t - 600, t + 600,
                                                                            True, 0)]))
    if guard == "tip_showing":
        return replace(base, showing=ShowingTip("d", "advice:x", "advice",
                                                int(at.timestamp()) + 600))
    raise AssertionError(guard)


@pytest.mark.parametrize("guard", GUARD_NAMES)
def test_each_guard_alone_blocks_a_moment_and_says_so(guard):
    verdict = detect(violating(guard), timer("morning_start"), NOW)
    assert verdict.detected.name == "morning_start" and verdict.moment is None
    assert verdict.blocked_by.name == guard
    assert [c.name for c in verdict.checks if not c.passed] == [guard]
    assert verdict.why.startswith(f"morning_start blocked by {guard}:")


def state_changed_at() -> int:
    return int((NOW - timedelta(days=9)).timestamp())


def test_every_failing_guard_is_reported_and_the_first_one_blocks():
    state = replace(violating("quiet_hours"), prefs=Preferences(
        "Europe/Paris", 11 * 60, 13 * 60, 0, changed_at=state_changed_at()))
    verdict = detect(state, timer("morning_start"), NOW)
    assert [c.name for c in verdict.checks if not c.passed] == ["quiet_hours", "daily_budget"]
    assert verdict.blocked_by.name == "quiet_hours"


def test_no_guard_runs_when_there_is_no_moment():
    assert detect(violating("deletion"), timer("tip_expired", "d"), NOW).checks == ()


def test_a_timer_trigger_id_is_stable_and_differs_between_days():
    first = timer("morning_start").trigger_id
    assert first == timer("morning_start").trigger_id
    assert first != timer("morning_start", fire_at=NOW + timedelta(days=1)).trigger_id
