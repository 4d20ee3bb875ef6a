import itertools
from datetime import UTC, datetime, timedelta

import pytest

from domain.features import UserFeatures, apply_decision, apply_feedback, fold
from domain.moments import SignalTrigger, TimerFired
from domain.timers import (
    INACTIVE_AFTER_S,
    TODO_LEAD_S,
    desired_timers,
    plan_timers,
    timer_id,
    tip_expired_unanswered,
    wake_minute,
)
from topics.records import (
    ContextObserved,
    HabitLogged,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
)

pytestmark = pytest.mark.unit
_ids = itertools.count()


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def signal(record_type, domain, when, **fields):
    return record_type(event_id=f"e{next(_ids)}", user_id="u", occurred_at=when, source="t",
                       **fields), domain


def step(state, record_type, domain, when, now=None, **fields):
    """Fold one signal and plan timers, as the features agent does: (new state, commands)."""
    event, domain = signal(record_type, domain, when, **fields)
    after, _ = fold(state, event, domain)
    return after, plan_timers(state, after, SignalTrigger(event, domain), now or when)


MAY_4 = at(2026, 5, 4, 10)


def joined(tz="Europe/Paris", when=MAY_4, **prefs):
    return step(None, LifecycleChanged, "lifecycle", when, change="user_created", time_zone=tz,
                **prefs)


def by_purpose(commands, purpose):
    return [c for c in commands if c.purpose == purpose]


# --- morning start ----------------------------------------------------------------


def test_a_new_person_gets_a_morning_timer_at_eight_local():
    _, commands = joined(when=at(2026, 5, 4, 10))
    (morning,) = by_purpose(commands, "morning_start")
    assert morning.action == "set" and morning.fire_at == at(2026, 5, 5, 6)  # 08:00 CEST


@pytest.mark.parametrize(("tz", "fired", "next_fire"), [
    ("Europe/Paris", at(2026, 3, 28, 7), at(2026, 3, 29, 6)),       # spring forward
    ("Europe/Paris", at(2026, 10, 24, 6), at(2026, 10, 25, 7)),     # fall back
    ("America/New_York", at(2026, 3, 7, 13), at(2026, 3, 8, 12)),   # spring forward
    ("America/New_York", at(2026, 10, 31, 12), at(2026, 11, 1, 13)),  # fall back
])
def test_a_fired_morning_timer_is_set_again_for_the_next_local_morning_across_dst(
        tz, fired, next_fire):
    state, _ = joined(tz, when=fired - timedelta(days=1))
    morning = TimerFired(timer_id("u", "morning_start"), "morning_start", fired)
    commands = plan_timers(state, state, morning, fired + timedelta(seconds=3))
    assert [(c.action, c.timer_id, c.fire_at) for c in commands] == [
        ("set", morning.timer_id, next_fire)]


def test_a_morning_timer_that_fires_early_is_not_set_for_the_same_morning_again():
    state, _ = joined(when=at(2026, 5, 3, 10))
    fired = at(2026, 5, 4, 6)
    morning = TimerFired(timer_id("u", "morning_start"), "morning_start", fired)
    (again,) = plan_timers(state, state, morning, fired - timedelta(seconds=2))
    assert again.fire_at == at(2026, 5, 5, 6)


def test_the_morning_waits_for_the_end_of_late_quiet_hours():
    state, commands = joined(when=at(2026, 5, 4, 10), quiet_start_minute=23 * 60,
                             quiet_end_minute=9 * 60 + 30)
    assert wake_minute(state) == 9 * 60 + 30
    assert by_purpose(commands, "morning_start")[0].fire_at == at(2026, 5, 5, 7, 30)


def test_changing_time_zone_moves_the_morning_timer():
    state, _ = joined(when=at(2026, 5, 4, 10))
    _, commands = step(state, LifecycleChanged, "lifecycle", at(2026, 5, 4, 11),
                       change="preferences_changed", time_zone="America/New_York")
    (morning,) = by_purpose(commands, "morning_start")
    assert morning.fire_at == at(2026, 5, 4, 12)  # 11:00 UTC is 07:00 EDT: 08:00 EDT comes next


def test_a_long_silent_person_gets_no_more_morning_timers_until_they_return():
    state, _ = joined(when=at(2026, 5, 4, 10))
    later = at(2026, 5, 4, 10) + timedelta(seconds=INACTIVE_AFTER_S + 3600)
    morning = TimerFired(timer_id("u", "morning_start"), "morning_start", later)
    assert plan_timers(state, state, morning, later) == []
    _, commands = step(state, MoodLogged, "mood", later, score=1)
    assert [c.purpose for c in commands] == ["morning_start"]


def test_opening_the_app_reasserts_the_morning_timer():
    state, _ = joined(when=at(2026, 5, 4, 10))
    _, commands = step(state, ContextObserved, "context", at(2026, 5, 4, 12), kind="app_opened")
    assert [(c.action, c.purpose) for c in commands] == [("set", "morning_start")]


# --- determinism ----------------------------------------------------------------------


def test_timer_ids_are_deterministic_and_distinct_per_person_purpose_and_ref():
    assert timer_id("u", "habit_window", "h1") == timer_id("u", "habit_window", "h1")
    ids = {timer_id(u, p, r) for u in ("u", "v") for p in ("habit_window", "todo_due_soon")
           for r in ("h1", "h2")}
    assert len(ids) == 8
    assert all(len(i) <= 128 for i in ids)


def test_planning_twice_gives_the_same_commands_and_no_change_plans_nothing():
    event, domain = signal(TaskChanged, "tasks", at(2026, 5, 4, 10), change="created",
                           task_id="t", title="x", due_at=at(2026, 5, 4, 15))
    before, _ = joined()
    after, _ = fold(before, event, domain)
    trigger = SignalTrigger(event, domain)
    first = plan_timers(before, after, trigger, at(2026, 5, 4, 10))
    assert first == plan_timers(before, after, trigger, at(2026, 5, 4, 10)) and first
    assert plan_timers(after, after, None, at(2026, 5, 4, 10, 5)) == []


# --- habits ------------------------------------------------------------------------------


def test_a_habit_with_a_usual_time_gets_a_window_timer_moved_to_tomorrow_once_done():
    state, _ = joined(when=at(2026, 5, 4, 6))
    state, commands = step(state, HabitLogged, "habits", at(2026, 5, 4, 6), change="defined",
                           habit_id="h", name="Run", usual_minute=18 * 60)
    (window,) = by_purpose(commands, "habit_window")
    assert (window.ref, window.fire_at) == ("h", at(2026, 5, 4, 16))  # 18:00 CEST today
    state, commands = step(state, HabitLogged, "habits", at(2026, 5, 4, 7), change="done",
                           habit_id="h")
    (moved,) = commands
    assert moved.timer_id == window.timer_id and moved.fire_at == at(2026, 5, 5, 16)


def test_a_fired_habit_timer_is_set_for_the_next_day():
    state, _ = joined(when=at(2026, 5, 4, 6))
    state, _ = step(state, HabitLogged, "habits", at(2026, 5, 4, 6), change="defined",
                    habit_id="h", usual_minute=18 * 60)
    fired = TimerFired(timer_id("u", "habit_window", "h"), "habit_window", at(2026, 5, 4, 16), "h")
    (again,) = plan_timers(state, state, fired, at(2026, 5, 4, 16, 0, 1))
    assert again.fire_at == at(2026, 5, 5, 16)


def test_a_removed_habit_cancels_its_timer():
    state, _ = joined(when=at(2026, 5, 4, 6))
    state, _ = step(state, HabitLogged, "habits", at(2026, 5, 4, 6), change="defined",
                    habit_id="h", usual_minute=18 * 60)
    _, commands = step(state, HabitLogged, "habits", at(2026, 5, 4, 7), change="removed",
                       habit_id="h")
    assert [(c.action, c.purpose, c.ref) for c in commands] == [("cancel", "habit_window", "h")]


# --- todos ---------------------------------------------------------------------------------


def test_a_todo_due_later_gets_a_timer_thirty_minutes_before():
    state, _ = joined()
    _, commands = step(state, TaskChanged, "tasks", at(2026, 5, 4, 10), change="created",
                       task_id="t", title="x", due_at=at(2026, 5, 4, 15))
    (due,) = by_purpose(commands, "todo_due_soon")
    assert due.fire_at == at(2026, 5, 4, 15) - timedelta(seconds=TODO_LEAD_S) and due.ref == "t"


def test_a_todo_due_within_the_lead_fires_right_away_once():
    state, _ = joined()
    now = at(2026, 5, 4, 10)
    state, commands = step(state, TaskChanged, "tasks", now, change="created", task_id="t",
                           title="x", due_at=now + timedelta(minutes=10))
    (due,) = by_purpose(commands, "todo_due_soon")
    assert due.fire_at == now
    fired = TimerFired(due.timer_id, "todo_due_soon", now, "t")
    assert plan_timers(state, state, fired, now + timedelta(seconds=1)) == []


def test_moving_a_due_date_moves_the_timer_and_completing_cancels_it():
    state, _ = joined()
    state, first = step(state, TaskChanged, "tasks", at(2026, 5, 4, 10), change="created",
                        task_id="t", title="x", due_at=at(2026, 5, 4, 15))
    state, moved = step(state, TaskChanged, "tasks", at(2026, 5, 4, 10, 1), change="updated",
                        task_id="t", due_at=at(2026, 5, 4, 17))
    assert [(c.action, c.timer_id, c.fire_at) for c in moved] == [
        ("set", first[0].timer_id, at(2026, 5, 4, 16, 30))]
    _, done = step(state, TaskChanged, "tasks", at(2026, 5, 4, 10, 2), change="completed",
                   task_id="t")
    assert [(c.action, c.timer_id) for c in done] == [("cancel", first[0].timer_id)]


def test_an_overdue_todo_gets_no_timer():
    state, _ = joined()
    _, commands = step(state, TaskChanged, "tasks", at(2026, 5, 4, 10), change="created",
                       task_id="t", title="x", due_at=at(2026, 5, 4, 9))
    assert by_purpose(commands, "todo_due_soon") == []


# --- tip expiry, deletion ----------------------------------------------------------------------


def test_a_decided_tip_gets_an_expiry_timer_cancelled_when_answered():
    state, _ = joined()
    now = at(2026, 5, 4, 10)
    shown, _ = apply_decision(state, "d1", "advice:x", "advice", now, now + timedelta(hours=4))
    (expiry,) = plan_timers(state, shown, None, now)
    assert (expiry.purpose, expiry.ref, expiry.fire_at) == ("tip_expired", "d1",
                                                             now + timedelta(hours=4))
    answered, _ = apply_feedback(shown, "d1", "ack", now + timedelta(minutes=5))
    (cancel,) = plan_timers(shown, answered, None, now + timedelta(minutes=5))
    assert (cancel.action, cancel.timer_id) == ("cancel", expiry.timer_id)


def test_an_expired_tip_is_unanswered_only_while_it_is_still_the_one_showing():
    state, _ = joined()
    now = at(2026, 5, 4, 10)
    shown, _ = apply_decision(state, "d1", "advice:x", "advice", now, now + timedelta(hours=4))
    assert tip_expired_unanswered(shown, "d1")
    assert not tip_expired_unanswered(shown, "d0")
    answered, _ = apply_feedback(shown, "d1", "done", now)
    assert not tip_expired_unanswered(answered, "d1")


def test_deletion_cancels_every_timer():
    state, _ = joined()
    state, _ = step(state, TaskChanged, "tasks", at(2026, 5, 4, 10), change="created",
                    task_id="t", title="x", due_at=at(2026, 5, 4, 15))
    state, _ = step(state, HabitLogged, "habits", at(2026, 5, 4, 10), change="defined",
                    habit_id="h", usual_minute=18 * 60)
    _, commands = step(state, LifecycleChanged, "lifecycle", at(2026, 5, 4, 10, 1),
                       change="deletion_requested")
    assert {c.action for c in commands} == {"cancel"}
    assert {c.purpose for c in commands} == {"morning_start", "todo_due_soon", "habit_window"}
    assert desired_timers(UserFeatures(user_id="u", deletion_requested=True), 0) == {}


def full_diff(before, after, now):
    """The plan without shortcuts: compare every desired timer before and after."""
    t = now.timestamp()
    old, new = desired_timers(before, t) if before else {}, desired_timers(after, t)
    sets = [c for i, c in new.items() if i not in old or old[i] != c]
    cancels = [(i, c.purpose) for i, c in old.items() if i not in new]
    return sets, cancels


def test_planning_only_what_changed_plans_exactly_what_a_full_comparison_plans():
    import random
    rng = random.Random(7)
    now = at(2026, 5, 4, 10)
    state = None
    for i in range(300):
        when = now + timedelta(minutes=i)
        choice = rng.randrange(6)
        if choice == 0:
            kw = {"change": rng.choice(["created", "updated", "completed"]),
                  "task_id": f"t{rng.randrange(8)}", "title": "x",
                  "due_at": when + timedelta(minutes=rng.randrange(-60, 600))}
            record, domain = TaskChanged, "tasks"
        elif choice == 1:
            kw = {"change": rng.choice(["defined", "done", "skipped", "removed"]),
                  "habit_id": f"h{rng.randrange(4)}", "usual_minute": rng.randrange(1440)}
            record, domain = HabitLogged, "habits"
        elif choice == 2:
            kw = {"change": "preferences_changed",
                  "time_zone": rng.choice(["Europe/Paris", "America/New_York", "UTC"])}
            record, domain = LifecycleChanged, "lifecycle"
        elif choice == 3:
            kw, record, domain = {"kind": "app_opened"}, ContextObserved, "context"
        else:
            kw, record, domain = {"score": rng.randrange(-2, 3)}, MoodLogged, "mood"
        event, domain = signal(record, domain, when, **kw)
        after, _ = fold(state, event, domain)
        if choice == 5 and after is not None:
            after, _ = apply_decision(after, f"d{i}", "advice:x", "advice", when,
                                      when + timedelta(hours=rng.randrange(1, 5)))
        planned = plan_timers(state, after, None, when)
        sets, cancels = full_diff(state, after, when)
        assert [c for c in planned if c.action == "set"] == sets
        assert [(c.timer_id, c.purpose) for c in planned if c.action == "cancel"] == cancels
        state = after
