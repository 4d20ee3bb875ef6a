"""Example records of every topic, for the published contracts.

Real record instances (the codec writes them), with fixed ids and times so the
generated AsyncAPI document is the same on every run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from topics.records import (
    CalendarChanged,
    ContextObserved,
    DeadLettered,
    FeedbackGiven,
    HabitLogged,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
    TimerScheduled,
    Tip,
    TipDecided,
)

AT = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
USER = "u-42"


def examples() -> dict[type, list[tuple[str, Any]]]:
    """(summary, record) pairs for each record class, in a stable order."""
    return {
        TaskChanged: [
            ("A task created in Todoist, due this afternoon",
             TaskChanged(event_id="todoist-8812-1", user_id=USER, occurred_at=AT,
                         source="todoist", change="created", task_id="t-9",
                         title="Call the dentist", due_at=AT + timedelta(hours=8), priority=3)),
            ("The same task completed",
             TaskChanged(event_id="todoist-8812-2", user_id=USER,
                         occurred_at=AT + timedelta(hours=5), source="todoist",
                         change="completed", task_id="t-9")),
        ],
        HabitLogged: [
            ("A habit done at its usual time",
             HabitLogged(event_id="habits-3-77", user_id=USER, occurred_at=AT,
                         source="habit-tracker", change="done", habit_id="h-stretch",
                         name="Stretch", usual_minute=450)),
        ],
        CalendarChanged: [
            ("A meeting scheduled",
             CalendarChanged(event_id="cal-5501", user_id=USER, occurred_at=AT,
                             source="calendar", change="scheduled",
                             calendar_event_id="ev-standup",
                             starts_at=AT + timedelta(hours=2),
                             ends_at=AT + timedelta(hours=2, minutes=30))),
        ],
        MoodLogged: [
            ("A good mood logged in the app",
             MoodLogged(event_id="mood-19", user_id=USER, occurred_at=AT, source="web",
                        score=1)),
        ],
        ContextObserved: [
            ("The app opened on a phone",
             ContextObserved(event_id="ctx-2040", user_id=USER, occurred_at=AT, source="web",
                             kind="app_opened", device="phone")),
        ],
        LifecycleChanged: [
            ("Preferences changed: quiet hours 22:00-07:00, three tips a day",
             LifecycleChanged(event_id="life-7", user_id=USER, occurred_at=AT, source="web",
                              change="preferences_changed", time_zone="Europe/Berlin",
                              quiet_start_minute=1320, quiet_end_minute=420, daily_budget=3,
                              kinds=["todo", "advice"])),
        ],
        TipDecided: [
            ("An advice given when the app opened",
             TipDecided(event_id="d-5f1c", user_id=USER, occurred_at=AT, source="oo.engine",
                        decision_id="d-5f1c", triggered_by="ctx-2040", moment="app_opened",
                        policy="random", propensity=0.25,
                        reason="app_opened: app opened on phone; random picked advice "
                        "'Four slow breaths' from 4 candidates (p=0.25)",
                        tip=Tip(id="advice:box-breathing", kind="advice",
                                title="Four slow breaths",
                                body="Breathe in for 4, hold for 4, out for 4, hold for 4.",
                                source="catalogue", meta={"topic": "breathing"}),
                        context_snapshot={"moment": "app_opened", "local_time":
                                          "2026-11-23T08:30+0100", "open_todos": 3,
                                          "mood": 1, "busy": False},
                        expires_at=AT + timedelta(hours=4))),
            ("A todo due soon",
             TipDecided(event_id="d-77a0", user_id=USER, occurred_at=AT + timedelta(hours=7),
                        source="oo.engine", decision_id="d-77a0", triggered_by="timer-t-9",
                        moment="todo_due_soon", policy="random", propensity=1.0,
                        reason="todo_due_soon: 'Call the dentist' due in 60 min; random "
                        "picked todo 'Call the dentist' from 1 candidates (p=1.00)",
                        tip=Tip(id="todo:t-9", kind="todo", title="Call the dentist",
                                source="todoist", deep_link="https://tasks.example.org/t/9"),
                        context_snapshot={"moment": "todo_due_soon", "open_todos": 1},
                        expires_at=AT + timedelta(hours=11))),
        ],
        FeedbackGiven: [
            ("The person marked the todo done after 4 seconds",
             FeedbackGiven(event_id="fb-311", user_id=USER,
                           occurred_at=AT + timedelta(hours=7, minutes=2), source="web",
                           decision_id="d-77a0", tip_id="todo:t-9", reaction="done",
                           dwell_ms=4000)),
            ("A snooze for an hour",
             FeedbackGiven(event_id="fb-312", user_id=USER, occurred_at=AT, source="web",
                           decision_id="d-5f1c", tip_id="advice:box-breathing",
                           reaction="snooze", snooze_until=AT + timedelta(hours=1))),
        ],
        TimerScheduled: [
            ("A timer set for the moment a todo is due soon",
             TimerScheduled(event_id="timer-set-t-9", user_id=USER, occurred_at=AT,
                            source="oo.engine", action="set", timer_id="todo_due_soon:t-9",
                            purpose="todo_due_soon", fire_at=AT + timedelta(hours=7),
                            ref="t-9")),
        ],
        DeadLettered: [
            ("A mood out of range, kept with the reason",
             DeadLettered(event_id="dl-9c2e0b7a1f3d4e5f6a7b8c9d0e1f2a3b", user_id=USER,
                          occurred_at=AT, source="oo.validation", topic="oo.signals.mood",
                          partition=2, offset=118, key="dS00Mg==",
                          reason="score: 9 is above the maximum 2",
                          raw="eyJzY29yZSI6OX0=")),
        ],
    }
