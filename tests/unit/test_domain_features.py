import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from domain.features import (
    FATIGUE_HALF_LIFE_S,
    MAX_CALENDAR_EVENTS,
    MAX_HABITS,
    MAX_OPEN_TODOS,
    MAX_REACTIONS,
    MAX_RECENT_TIPS,
    MAX_TOMBSTONES,
    UserFeatures,
    apply_decision,
    apply_feedback,
    fold,
)
from topics.records import (
    CalendarChanged,
    ContextObserved,
    HabitLogged,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 5, 4, 9, tzinfo=UTC)  # a Monday, 11:00 in Paris
_ids = itertools.count()


def s(at: datetime) -> int:
    return int(at.timestamp())


def task(change, task_id="T1", at=T0, **kw):
    return TaskChanged(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                       change=change, task_id=task_id, **kw), "tasks"


def habit(change, habit_id="H1", at=T0, **kw):
    return HabitLogged(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                       change=change, habit_id=habit_id, **kw), "habits"


def meeting(change, cal_id="C1", start=T0, minutes=60, at=T0, busy=True):
    return CalendarChanged(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                           change=change, calendar_event_id=cal_id, starts_at=start,
                           ends_at=start + timedelta(minutes=minutes), busy=busy), "calendar"


def mood(score, at=T0):
    return MoodLogged(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                      score=score), "mood"


def context(kind, at=T0):
    return ContextObserved(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                           kind=kind), "context"


def lifecycle(change, at=T0, **kw):
    return LifecycleChanged(event_id=f"e{next(_ids)}", user_id="u", occurred_at=at, source="t",
                            change=change, **kw), "lifecycle"


def folded(*signals, state=None):
    for event, domain in signals:
        state, _ = fold(state, event, domain)
    return state


PARIS = lifecycle("user_created", at=T0 - timedelta(days=30), time_zone="Europe/Paris")


# --- tasks ---------------------------------------------------------------------


def test_a_created_task_becomes_an_open_todo_with_its_due_time_and_priority():
    state = folded(task("created", title="Pay rent", due_at=T0 + timedelta(hours=2), priority=4))
    (todo,) = state.todos
    assert (todo.id, todo.title, todo.due_at, todo.priority) == (
        "T1", "Pay rent", s(T0 + timedelta(hours=2)), 4)


def test_an_update_without_a_title_keeps_the_known_title():
    state = folded(task("created", title="Pay rent"), task("updated", at=T0 + timedelta(minutes=1)))
    assert state.todos[0].title == "Pay rent"


def test_completed_and_deleted_tasks_leave_the_open_todos():
    state = folded(task("created", "A", title="a"), task("created", "B", title="b"),
                   task("completed", "A", at=T0 + timedelta(minutes=1)),
                   task("deleted", "B", at=T0 + timedelta(minutes=1)))
    assert len(state.todos) == 0


def test_a_late_update_does_not_override_a_newer_one():
    state = folded(task("updated", title="new", at=T0 + timedelta(minutes=5)),
                   task("updated", title="old", at=T0))
    assert state.todos[0].title == "new"


def test_a_late_created_event_does_not_resurrect_a_completed_task():
    state = folded(task("completed", at=T0 + timedelta(minutes=5)), task("created", title="x"))
    assert len(state.todos) == 0


def test_a_task_reopened_after_completion_is_open_again():
    state = folded(task("created", title="x"), task("completed", at=T0 + timedelta(minutes=1)),
                   task("reopened", title="x", at=T0 + timedelta(minutes=2)))
    assert [t.id for t in state.todos] == ["T1"]
    assert all(t.key != "task:T1" for t in state.tombstones)


def test_open_todos_are_bounded_keeping_the_most_pressing():
    signals = [task("created", f"T{i}", title=f"t{i}", due_at=T0 + timedelta(hours=i))
               for i in range(MAX_OPEN_TODOS + 5)]
    state = folded(*signals)
    assert len(state.todos) == MAX_OPEN_TODOS
    assert {t.id for t in state.todos} == {f"T{i}" for i in range(MAX_OPEN_TODOS)}


def test_open_todos_rank_by_due_time_then_priority_with_undated_last():
    state = folded(task("created", "late", title="l", due_at=T0 + timedelta(hours=5)),
                   task("created", "none", title="n", priority=4),
                   task("created", "soon-low", title="s", due_at=T0 + timedelta(hours=1)),
                   task("created", "soon-high", title="s", due_at=T0 + timedelta(hours=1),
                        priority=4))
    assert [t.id for t in state.open_todos_ranked()] == ["soon-high", "soon-low", "late", "none"]


def test_tombstones_are_bounded():
    signals = [task("deleted", f"T{i}") for i in range(MAX_TOMBSTONES + 10)]
    assert len(folded(*signals).tombstones) == MAX_TOMBSTONES


# --- habits --------------------------------------------------------------------


def test_a_defined_habit_keeps_its_name_and_usual_minute():
    state = folded(habit("defined", name="Meditate", usual_minute=7 * 60 + 30))
    h = state.habits[0]
    assert (h.name, h.usual_minute, h.streak, h.last_done_on) == ("Meditate", 450, 0, None)


def test_habit_streak_grows_on_consecutive_local_days_and_resets_after_a_gap():
    days = [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    state = folded(PARIS, habit("defined", name="Read"), *(habit("done", at=d) for d in days))
    assert state.habits[0].streak == 3 and state.habits[0].last_done_on == "2026-05-06"
    state = folded(habit("done", at=T0 + timedelta(days=4)), state=state)
    assert state.habits[0].streak == 1


def test_habit_done_twice_the_same_local_day_counts_once():
    state = folded(habit("done", at=T0), habit("done", at=T0 + timedelta(hours=2)))
    assert state.habits[0].streak == 1


def test_habit_days_are_local_days_not_utc_days():
    # 23:30 UTC on May 4 is 01:30 on May 5 in Paris.
    late_evening = datetime(2026, 5, 4, 23, 30, tzinfo=UTC)
    state = folded(PARIS, habit("done", at=late_evening))
    assert state.habits[0].last_done_on == "2026-05-05"


def test_a_habit_without_usual_time_learns_it_from_the_first_done():
    state = folded(PARIS, habit("done", at=datetime(2026, 5, 4, 5, 15, tzinfo=UTC)))
    assert state.habits[0].usual_minute == 7 * 60 + 15  # 07:15 Paris summer time


def test_a_skipped_habit_loses_its_streak_and_is_settled_for_the_day():
    state = folded(habit("done", at=T0 - timedelta(days=1)), habit("skipped", at=T0))
    h = state.habits[0]
    assert h.streak == 0 and state.habit_settled_on_day_of(h, s(T0))


def test_a_late_done_event_does_not_rewrite_the_streak():
    state = folded(habit("done", at=T0), habit("done", at=T0 + timedelta(days=1)),
                   habit("done", at=T0 - timedelta(days=5)))
    assert state.habits[0].streak == 2 and state.habits[0].last_done_on == "2026-05-05"


def test_a_removed_habit_is_gone_and_late_news_does_not_bring_it_back():
    state = folded(habit("defined", name="x"), habit("removed", at=T0 + timedelta(minutes=1)),
                   habit("done", at=T0))
    assert len(state.habits) == 0


def test_habits_are_bounded():
    state = folded(*(habit("defined", f"H{i}", name="h") for i in range(MAX_HABITS + 3)))
    assert len(state.habits) == MAX_HABITS


# --- calendar ------------------------------------------------------------------


def test_scheduled_events_are_kept_sorted_and_cancelled_ones_dropped():
    state = folded(meeting("scheduled", "B", start=T0 + timedelta(hours=3)),
                   meeting("scheduled", "A", start=T0 + timedelta(hours=1)),
                   meeting("scheduled", "C", start=T0 + timedelta(hours=5)),
                   meeting("cancelled", "C", start=T0 + timedelta(hours=5),
                           at=T0 + timedelta(minutes=1)))
    assert [e.id for e in state.calendar] == ["A", "B"]


def test_a_late_schedule_does_not_bring_back_a_cancelled_event():
    state = folded(meeting("cancelled", at=T0 + timedelta(minutes=5)), meeting("scheduled"))
    assert len(state.calendar) == 0


def test_events_that_ended_long_ago_are_pruned():
    old = meeting("scheduled", "old", start=T0 - timedelta(days=1))
    state = folded(old, meeting("scheduled", "new", start=T0 + timedelta(hours=1)))
    assert [e.id for e in state.calendar] == ["new"]


def test_calendar_is_bounded_keeping_the_soonest():
    signals = [meeting("scheduled", f"C{i:03d}", start=T0 + timedelta(hours=i))
               for i in range(MAX_CALENDAR_EVENTS + 6)]
    state = folded(*reversed(signals))
    assert len(state.calendar) == MAX_CALENDAR_EVENTS
    assert state.calendar[0].id == "C000"


def test_calendar_helpers_find_current_next_and_free_window():
    state = folded(meeting("scheduled", "now", start=T0 - timedelta(minutes=30)),
                   meeting("scheduled", "next", start=T0 + timedelta(hours=2)),
                   meeting("scheduled", "free", start=T0 + timedelta(hours=4), busy=False))
    at = s(T0)
    assert state.current_event(at).id == "now"
    assert state.next_event(at).id == "next"
    assert state.free_window(at) is None
    after = s(T0 + timedelta(minutes=45))
    assert state.free_window(after) == (s(T0 + timedelta(minutes=30)), s(T0 + timedelta(hours=2)))
    assert state.last_ended_event(after).id == "now"


def test_a_non_busy_event_is_not_a_current_event():
    state = folded(meeting("scheduled", busy=False, start=T0 - timedelta(minutes=5)))
    assert state.current_event(s(T0)) is None


# --- mood, context, lifecycle ----------------------------------------------------


def test_the_latest_mood_wins_even_when_an_older_one_arrives_late():
    state = folded(mood(-2, at=T0), mood(2, at=T0 - timedelta(hours=1)))
    assert (state.mood_score, state.mood_at) == (-2, s(T0))


def test_app_opening_is_remembered_and_other_context_is_activity_only():
    state = folded(context("app_opened"), context("page_hidden", at=T0 + timedelta(minutes=1)))
    assert state.last_app_open_at == s(T0)
    assert state.last_activity_at == s(T0 + timedelta(minutes=1))


def test_preferences_have_humane_defaults():
    p = UserFeatures(user_id="u").prefs
    assert (p.time_zone, p.quiet_start_minute, p.quiet_end_minute, p.daily_budget, p.kinds) == (
        "UTC", 22 * 60, 7 * 60, 3, ("todo", "advice"))


def test_preferences_change_only_the_fields_given():
    state = folded(PARIS, lifecycle("preferences_changed", daily_budget=1, kinds=["advice"]))
    p = state.prefs
    assert (p.time_zone, p.daily_budget, p.kinds, p.quiet_start_minute) == (
        "Europe/Paris", 1, ("advice",), 22 * 60)


def test_an_unknown_time_zone_is_ignored():
    state = folded(PARIS, lifecycle("preferences_changed", time_zone="Mars/Olympus"))
    assert state.prefs.time_zone == "Europe/Paris"


def test_late_preferences_do_not_override_newer_ones():
    state = folded(lifecycle("preferences_changed", daily_budget=5, at=T0),
                   lifecycle("preferences_changed", daily_budget=1, at=T0 - timedelta(hours=1)))
    assert state.prefs.daily_budget == 5


def test_deletion_requested_is_sticky():
    state = folded(lifecycle("deletion_requested", at=T0),
                   lifecycle("preferences_changed", daily_budget=2, at=T0 + timedelta(hours=1)))
    assert state.deletion_requested


def test_an_unknown_domain_counts_and_is_remembered_but_changes_nothing_else():
    state = folded(mood(1, at=T0))
    event = MoodLogged(event_id="x", user_id="u", occurred_at=T0, source="t", score=-2)
    state2, changed = fold(state, event, "future-domain")
    assert changed and state2.mood_score == 1 and state2.signals_by_domain["future-domain"] == 1


# --- decisions and feedback --------------------------------------------------------


def decided(state, decision_id="d1", tip_id="advice:x", at=T0, hours=4):
    state, _ = apply_decision(state, decision_id, tip_id, "advice", at, at + timedelta(hours=hours))
    return state


def test_a_decision_counts_today_shows_and_is_recorded_once():
    state = decided(folded(PARIS))
    again, changed = apply_decision(state, "d1", "advice:x", "advice", T0, T0 + timedelta(hours=4))
    assert not changed and again == state
    assert (state.tips_today, state.tips_day, state.last_tip_at) == (1, "2026-05-04", s(T0))
    assert state.showing.decision_id == "d1" and state.showing.expires_at == s(T0) + 4 * 3600


def test_tips_today_resets_on_the_next_local_day():
    state = decided(decided(folded(PARIS), "d1"), "d2", at=T0 + timedelta(hours=2))
    assert state.tips_today == 2
    # 22:30 UTC is already the next day in Paris (00:30).
    state = decided(state, "d3", at=datetime(2026, 5, 4, 22, 30, tzinfo=UTC))
    assert (state.tips_today, state.tips_day) == (1, "2026-05-05")


def test_a_late_decision_of_an_earlier_day_does_not_touch_todays_count():
    state = decided(folded(PARIS), "today", at=T0)
    state = decided(state, "yesterday", at=T0 - timedelta(days=1))
    assert (state.tips_today, state.tips_day) == (1, "2026-05-04")
    assert state.showing.decision_id == "today"


def test_an_answer_clears_the_tip_showing_but_delivered_and_seen_do_not():
    state = decided(folded(PARIS))
    for reaction in ("delivered", "seen"):
        state, _ = apply_feedback(state, "d1", reaction, T0)
        assert state.showing is not None
    state, _ = apply_feedback(state, "d1", "ack", T0 + timedelta(minutes=1))
    assert state.showing is None


def test_feedback_on_another_decision_leaves_the_showing_tip():
    state, _ = apply_feedback(decided(folded(PARIS)), "older", "dismiss", T0)
    assert state.showing is not None


def test_the_same_reaction_twice_is_a_duplicate():
    state, _ = apply_feedback(decided(folded(PARIS)), "d1", "dismiss", T0)
    again, changed = apply_feedback(state, "d1", "dismiss", T0)
    assert not changed and again == state


def test_feedback_defaults_the_tip_id_to_the_decided_tip():
    state, _ = apply_feedback(decided(folded(PARIS), tip_id="advice:water"), "d1", "seen", T0)
    assert state.reactions[-1].tip_id == "advice:water"


def test_fatigue_rises_on_dismissals_and_decays_by_half_each_half_life():
    state = decided(folded(PARIS))
    state, _ = apply_feedback(state, "d1", "dismiss", T0)
    state, _ = apply_feedback(state, "d2", "ignored", T0)
    assert state.fatigue_level(s(T0)) == pytest.approx(1.5)
    assert state.fatigue_level(s(T0) + FATIGUE_HALF_LIFE_S) == pytest.approx(0.75)
    assert state.fatigue_level(s(T0) + 10 * FATIGUE_HALF_LIFE_S) < 0.01


def test_positive_reactions_lower_fatigue_but_never_below_zero():
    state, _ = apply_feedback(decided(folded(PARIS)), "d1", "dismiss", T0)
    state, _ = apply_feedback(state, "d2", "done", T0)
    assert state.fatigue_level(s(T0)) == pytest.approx(0.5)
    state, _ = apply_feedback(state, "d3", "done", T0)
    state, _ = apply_feedback(state, "d4", "ack", T0)
    assert state.fatigue_level(s(T0)) == 0.0


def test_done_on_a_todo_tip_closes_the_todo():
    state = folded(task("created", title="x"))
    state = decided(state, tip_id="todo:T1")
    state, _ = apply_feedback(state, "d1", "done", T0 + timedelta(minutes=1))
    assert len(state.todos) == 0
    late = folded(task("updated", title="x", at=T0), state=state)
    assert len(late.todos) == 0


def test_done_on_a_habit_tip_marks_the_habit_done_today():
    state = folded(PARIS, habit("defined", name="Walk"))
    state = decided(state, tip_id="habit:H1")
    state, _ = apply_feedback(state, "d1", "done", T0)
    assert state.habits[0].last_done_on == "2026-05-04" and state.habits[0].streak == 1


def test_an_unknown_reaction_is_refused():
    with pytest.raises(ValueError):
        apply_feedback(UserFeatures(user_id="u"), "d1", "liked", T0)


def test_reactions_and_recent_tips_are_bounded():
    state = folded(PARIS)
    for i in range(40):
        state = decided(state, f"d{i}", at=T0 + timedelta(minutes=i))
        state, _ = apply_feedback(state, f"d{i}", "seen", T0 + timedelta(minutes=i))
    assert len(state.reactions) == MAX_REACTIONS and len(state.recent_tips) == MAX_RECENT_TIPS
    assert state.reactions[-1].decision_id == "d39"


# --- table representation ------------------------------------------------------


def rich_state():
    state = folded(PARIS, task("created", title="Pay rent", due_at=T0 + timedelta(hours=3)),
                   task("completed", "T0"), habit("done", name="Read"),
                   meeting("scheduled", start=T0 + timedelta(hours=1)), mood(-1),
                   context("app_opened"))
    state = decided(state)
    state, _ = apply_feedback(state, "d1", "dismiss", T0)
    return state


def test_a_rich_state_survives_to_dict_and_from_dict():
    state = rich_state()
    assert UserFeatures.from_dict(state.to_dict()) == state


def test_a_rich_state_survives_a_json_round_trip():
    state = rich_state()
    back = UserFeatures.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state
    assert back.todos[0].title == "Pay rent" and back.habits[0].name == "Read"


def test_folding_on_a_reloaded_state_equals_folding_on_the_original():
    state = rich_state()
    reloaded = UserFeatures.from_dict(json.loads(json.dumps(state.to_dict())))
    for signal in (task("updated", title="Pay rent now", at=T0 + timedelta(minutes=1)),
                   habit("done", at=T0 + timedelta(days=1)),
                   meeting("updated", minutes=30, start=T0 + timedelta(hours=1),
                           at=T0 + timedelta(minutes=1))):
        assert folded(signal, state=reloaded) == folded(signal, state=state)
