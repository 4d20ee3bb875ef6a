import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.candidates import (
    MAX_TODO_CANDIDATES,
    SOURCES,
    SourceRegistry,
    Tip,
    advice_tips,
    gather,
    habit_tips,
    register_source,
    todo_tips,
)
from domain.catalogue import default_catalogue
from domain.features import UserFeatures, apply_decision, apply_feedback, fold
from domain.moments import Moment
from topics.records import CalendarChanged, HabitLogged, LifecycleChanged, MoodLogged, TaskChanged

pytestmark = pytest.mark.unit
NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)  # 14:00 in Paris, afternoon
AT = NOW.timestamp()
_ids = itertools.count()


def person(*signals, **prefs) -> UserFeatures:
    fields = {"time_zone": "Europe/Paris", **prefs}
    events = [(LifecycleChanged, "lifecycle", NOW - timedelta(days=3),
               {"change": "user_created", **fields}), *signals]
    state = None
    for record_type, domain, when, kw in events:
        event = record_type(event_id=f"e{next(_ids)}", user_id="u", occurred_at=when, source="t",
                            **kw)
        state, _ = fold(state, event, domain)
    return state


def todo(task_id, title="Do it", due_in=None, priority=1):
    due = NOW + due_in if due_in is not None else None
    return (TaskChanged, "tasks", NOW - timedelta(hours=1),
            {"change": "created", "task_id": task_id, "title": title, "due_at": due,
             "priority": priority})


def habit(habit_id, usual_minute, name="Walk", done_at=None):
    if done_at is not None:
        return (HabitLogged, "habits", done_at, {"change": "done", "habit_id": habit_id})
    return (HabitLogged, "habits", NOW - timedelta(days=1),
            {"change": "defined", "habit_id": habit_id, "name": name,
             "usual_minute": usual_minute})


def moment(name, ref=None):
    return Moment(name, ref, "test")


# --- registry -----------------------------------------------------------------------


def test_the_built_in_sources_are_registered_by_name_in_order():
    assert SOURCES.names()[:3] == ("todos", "habits", "advice")


def test_a_name_cannot_be_registered_twice_without_replace():
    with pytest.raises(ValueError):
        register_source("todos", todo_tips)


def test_a_new_source_plugs_in_without_touching_the_others():
    registry = SourceRegistry()
    registry.register("quotes", lambda f, m, at: [Tip("quote:1", "advice", "Breathe", "", "q")])
    registry.register("advice", advice_tips)
    tips = gather(person(), moment("app_opened"), NOW, registry=registry)
    assert tips[0].id == "quote:1" and all(t.source == "advice" for t in tips[1:])


def test_gather_can_ask_only_some_sources():
    state = person(todo("t1"))
    tips = gather(state, moment("app_opened"), NOW, sources=["todos"])
    assert [t.id for t in tips] == ["todo:t1"]


def test_gather_is_deterministic():
    state = person(todo("t1"), todo("t2", due_in=timedelta(hours=2)))
    assert gather(state, moment("app_opened"), NOW) == gather(state, moment("app_opened"), NOW)


# --- todos --------------------------------------------------------------------------------


def test_todos_are_offered_most_pressing_first_and_capped():
    state = person(todo("later", due_in=timedelta(hours=5)), todo("none", priority=4),
                   todo("soon", due_in=timedelta(hours=1)),
                   todo("urgent-soon", due_in=timedelta(hours=1), priority=4),
                   todo("tomorrow", due_in=timedelta(days=1)))
    tips = todo_tips(state, moment("app_opened"), AT)
    assert [t.id for t in tips] == ["todo:urgent-soon", "todo:soon", "todo:later"]
    assert len(tips) == MAX_TODO_CANDIDATES
    assert all(t.kind == "todo" and t.source == "todos" and t.deep_link is None for t in tips)
    assert tips[0].meta["task_id"] == "urgent-soon" and tips[0].body == "Due today at 15:00."


def test_untitled_todos_are_not_offered():
    state = person((TaskChanged, "tasks", NOW, {"change": "created", "task_id": "t"}))
    assert todo_tips(state, moment("app_opened"), AT) == ()


def test_the_todo_due_soon_moment_offers_only_that_todo():
    state = person(todo("a", due_in=timedelta(minutes=5)), todo("b", due_in=timedelta(minutes=30)))
    tips = todo_tips(state, moment("todo_due_soon", "b"), AT)
    assert [t.id for t in tips] == ["todo:b"]


def test_no_work_is_pushed_on_a_low_mood():
    assert todo_tips(person(todo("t")), moment("low_mood"), AT) == ()


def test_a_dismissed_todo_rests_for_a_while():
    state = person(todo("t"))
    state, _ = apply_decision(state, "d", "todo:t", "todo", NOW - timedelta(hours=3), NOW)
    state, _ = apply_feedback(state, "d", "dismiss", NOW - timedelta(hours=3))
    assert todo_tips(state, moment("app_opened"), AT) == ()
    assert todo_tips(state, moment("app_opened"), AT + 12 * 3600) != ()


def test_overdue_and_later_todos_say_when_they_were_due():
    state = person(todo("old", due_in=timedelta(hours=-2)), todo("tmrw", due_in=timedelta(days=1)))
    bodies = {t.id: t.body for t in todo_tips(state, moment("app_opened"), AT)}
    assert bodies == {"todo:old": "Overdue since 2026-05-04 12:00.",
                      "todo:tmrw": "Due tomorrow at 14:00."}


# --- habits ---------------------------------------------------------------------------


def test_the_habit_window_offers_its_habit_as_something_to_do():
    state = person(habit("h", 14 * 60, "Meditate"))
    (tip,) = habit_tips(state, moment("habit_window", "h"), AT)
    assert (tip.id, tip.kind, tip.source, tip.title) == ("habit:h", "todo", "habits",
                                                          "Time for Meditate")
    assert "14:00" in tip.body


def test_a_habit_done_today_is_not_offered():
    state = person(habit("h", 14 * 60), habit("h", 0, done_at=NOW - timedelta(hours=1)))
    assert habit_tips(state, moment("habit_window", "h"), AT) == ()


def test_habits_near_their_usual_time_join_other_moments():
    state = person(habit("near", 14 * 60 + 30), habit("far", 9 * 60))
    assert [t.id for t in habit_tips(state, moment("app_opened"), AT)] == ["habit:near"]
    assert habit_tips(state, moment("low_mood"), AT) == ()


# --- advice ---------------------------------------------------------------------------


def test_advice_fits_the_moment():
    ids = {t.id.removeprefix("advice:") for t in advice_tips(person(), moment("todo_due_soon"),
                                                              AT)}
    assert ids and all("todo_due_soon" in default_catalogue().get(i).moments for i in ids)


def test_low_mood_brings_the_low_mood_advices():
    low = person((MoodLogged, "mood", NOW - timedelta(minutes=1), {"score": -2}))
    ids = {t.id for t in advice_tips(low, moment("low_mood"), AT)}
    assert "advice:name-the-feeling" in ids
    assert "advice:name-the-feeling" not in {
        t.id for t in advice_tips(person(), moment("low_mood"), AT)}


def test_after_meeting_advice_needs_a_meeting_that_just_ended():
    meeting = (CalendarChanged, "calendar", NOW - timedelta(hours=2),
               {"change": "scheduled", "calendar_event_id": "m",
                "starts_at": NOW - timedelta(hours=1), "ends_at": NOW - timedelta(minutes=5)})
    ids = {t.id for t in advice_tips(person(meeting), moment("free_after_meeting"), AT)}
    assert "advice:meeting-notes" in ids
    assert "advice:meeting-notes" not in {
        t.id for t in advice_tips(person(), moment("free_after_meeting"), AT)}


def test_advice_given_today_is_not_repeated_and_a_dismissed_one_rests_a_week():
    state = person()
    first = advice_tips(state, moment("app_opened"), AT)[0]
    state, _ = apply_decision(state, "d", first.id, "advice", NOW - timedelta(hours=2), NOW)
    assert first.id not in {t.id for t in advice_tips(state, moment("app_opened"), AT)}
    assert first.id in {t.id for t in advice_tips(state, moment("app_opened"), AT + 86400)}
    state, _ = apply_feedback(state, "d", "dismiss", NOW - timedelta(hours=2))
    assert first.id not in {t.id for t in advice_tips(state, moment("app_opened"), AT + 86400)}


# --- preferences and the tip on screen ----------------------------------------------------


@pytest.mark.parametrize(("kinds", "expected"), [(["advice"], {"advice"}), (["todo"], {"todo"}),
                                                 ([], set())])
def test_only_the_kinds_the_person_wants_are_offered(kinds, expected):
    state = person(todo("t"), kinds=kinds)
    assert {t.kind for t in gather(state, moment("app_opened"), NOW)} == expected


def test_the_tip_on_screen_is_not_offered_again():
    state = person(todo("t"))
    state, _ = apply_decision(state, "d", "todo:t", "todo", NOW, NOW + timedelta(hours=4))
    state = replace(state, recent_tips=state.recent_tips.without("d"))  # only `showing` knows it
    assert "todo:t" not in {t.id for t in gather(state, moment("app_opened"), NOW)}


def test_tips_convert_to_record_fields():
    tip = todo_tips(person(todo("t")), moment("app_opened"), AT)[0]
    assert tip.to_dict() == {"id": "todo:t", "kind": "todo", "title": "Do it", "body": "",
                             "source": "todos", "deep_link": None,
                             "meta": {"task_id": "t", "due_at": None, "priority": 1}}
