"""Durable timers: which ones a person's features call for, as set/cancel commands.

Timers are derived, not remembered: `desired_timers(features, at)` is the
full set a state calls for, and `plan_timers` sends only the difference
between the state before and after a change (plus the next occurrence of a
recurring timer that just fired). Timer ids are deterministic per person,
purpose and subject, so setting a timer again overwrites it: re-planning is
idempotent and a redelivered event plans nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from domain.clock import epoch, in_daily_window, next_local_minute, utc
from domain.features import Rows, UserFeatures
from domain.moments import SignalTrigger, TimerFired, Trigger

DEFAULT_WAKE_MINUTE = 8 * 60
TODO_LEAD_S = 30 * 60
# A person silent this long gets no more morning timers until they come back.
INACTIVE_AFTER_S = 14 * 24 * 3600
RECURRING = frozenset({"morning_start", "habit_window"})
# The timer that ends a deleted person's forget window: their marker is then purged.
FORGET = "forget"


@dataclass(frozen=True, slots=True)
class TimerCommand:
    """Set (or cancel) timer `timer_id`, firing `purpose` at `fire_at` about `ref`.

    Maps one to one onto `topics.records.TimerScheduled` (action, timer_id,
    purpose, fire_at, ref). A cancel carries the fire time it cancels.
    """

    action: Literal["set", "cancel"]
    timer_id: str
    purpose: str
    fire_at: datetime
    ref: str | None = None


def timer_id(user_id: str, purpose: str, ref: str | None = None) -> str:
    """The deterministic id of a person's timer for `purpose` about `ref` (≤ 64 chars)."""
    digest = hashlib.sha256(f"{user_id}\x1f{purpose}\x1f{ref or ''}".encode()).hexdigest()
    return f"{purpose}:{digest[:32]}"


def wake_minute(features: UserFeatures) -> int:
    """The local minute the person's day starts: 08:00, or the end of quiet hours if later.

    Never inside quiet hours, so the morning moment is not born blocked.
    """
    p = features.prefs
    if in_daily_window(DEFAULT_WAKE_MINUTE, p.quiet_start_minute, p.quiet_end_minute):
        return p.quiet_end_minute
    return DEFAULT_WAKE_MINUTE


def _morning_timers(features: UserFeatures, at: float) -> list[TimerCommand]:
    last_seen = features.last_activity_at
    if last_seen is None or at - last_seen > INACTIVE_AFTER_S:
        return []
    fire = next_local_minute(wake_minute(features), features.prefs.time_zone, at)
    return [TimerCommand("set", timer_id(features.user_id, "morning_start"), "morning_start",
                         utc(fire))]


def _habit_timers(features: UserFeatures, at: float) -> list[TimerCommand]:
    today, tz = features.local_day(at), features.prefs.time_zone
    wanted = []
    for habit in features.habits:
        if habit.usual_minute is None:
            continue
        settled = habit.last_done_on == today or habit.skipped_on == today
        fire = next_local_minute(habit.usual_minute, tz, at, not_on=today if settled else None)
        wanted.append(TimerCommand("set", timer_id(features.user_id, "habit_window", habit.id),
                                   "habit_window", utc(fire), habit.id))
    return wanted


def _todo_timers(features: UserFeatures, at: float) -> list[TimerCommand]:
    wanted = []
    for todo in features.todos:
        if todo.due_at is None or todo.due_at <= at:
            continue
        # Due sooner than the lead: fire right away (the moment rule re-checks "due soon").
        fire = max(todo.due_at - TODO_LEAD_S, at)
        wanted.append(TimerCommand("set", timer_id(features.user_id, "todo_due_soon", todo.id),
                                   "todo_due_soon", utc(fire), todo.id))
    return wanted


def _tip_timers(features: UserFeatures, at: float) -> list[TimerCommand]:
    showing = features.showing_at(at)
    if showing is None:
        return []
    # One expiry timer per person: a newer tip replaces the older one's timer.
    return [TimerCommand("set", timer_id(features.user_id, "tip_expired"), "tip_expired",
                         utc(showing.expires_at), showing.decision_id)]


# Each kind of timer with what it depends on: when those inputs are the very same
# before and after a change, its timers cannot differ and are not even computed
# (most signals change none of them, and computing todo and habit timers for a
# full state costs more than the whole fold).
_Inputs = Callable[[UserFeatures, float], tuple[Any, ...]]
_PARTS: tuple[tuple[_Inputs, Callable[[UserFeatures, float], list[TimerCommand]]], ...] = (
    (lambda f, at: (f.prefs, f.last_activity_at is not None
                    and at - f.last_activity_at <= INACTIVE_AFTER_S), _morning_timers),
    (lambda f, at: (f.habits, f.prefs), _habit_timers),
    (lambda f, at: (f.todos,), _todo_timers),
    (lambda f, at: (f.showing,), _tip_timers),
)


def _same_inputs(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    # Collections are compared by identity only: a fold that leaves one alone
    # passes the very same object on, and decoding both to compare would cost more.
    return all(x is y or (not isinstance(x, Rows) and x == y) for x, y in zip(a, b, strict=True))


def desired_timers(features: UserFeatures, at: float) -> dict[str, TimerCommand]:
    """Every timer `features` call for at `at`, keyed by timer id (all `set`).

    Morning start while the person is active, each habit's window, each open
    todo's due-soon, and the expiry of the tip showing; none after deletion.
    """
    if features.deletion_requested:
        return {}
    return {c.timer_id: c for _, timers in _PARTS for c in timers(features, at)}


def plan_timers(features_before: UserFeatures | None, features_after: UserFeatures,
                trigger: Trigger | None, now: datetime) -> list[TimerCommand]:
    """The timer commands a change of features (and the trigger that caused it) calls for.

    - a timer the new state wants, new or at another time or about another ref: set;
    - a timer the old state wanted and the new one does not: cancel;
    - a recurring timer (morning, habit) that just fired: set its next occurrence;
    - an app opening re-sets the morning timer (idempotent; heals a lost timer).
    `trigger` is None for changes that are not signals or timers (decisions, feedback).
    """
    at = epoch(now)
    if isinstance(trigger, TimerFired):
        # Never re-plan at or before the fire time, or a timer could fire twice.
        at = max(at, epoch(trigger.fire_at))
    before: dict[str, TimerCommand] = {}
    after: dict[str, TimerCommand] = {}
    if features_before is None or features_before.deletion_requested \
            or features_after.deletion_requested:
        before = desired_timers(features_before, at) if features_before is not None else {}
        after = desired_timers(features_after, at)
    else:
        for inputs, timers in _PARTS:
            if not _same_inputs(inputs(features_before, at), inputs(features_after, at)):
                before.update((c.timer_id, c) for c in timers(features_before, at))
                after.update((c.timer_id, c) for c in timers(features_after, at))
    commands: list[TimerCommand] = []
    for tid, command in after.items():
        old = before.get(tid)
        if old is None or old.fire_at != command.fire_at or old.ref != command.ref:
            commands.append(command)
    for tid, old in before.items():
        if tid not in after:
            commands.append(TimerCommand("cancel", tid, old.purpose, old.fire_at, old.ref))
    again: TimerCommand | None = None
    wanted_again = None
    if isinstance(trigger, TimerFired) and trigger.purpose in RECURRING:
        wanted_again = trigger.timer_id
    elif (isinstance(trigger, SignalTrigger) and trigger.domain == "context"
          and getattr(trigger.event, "kind", None) == "app_opened"):
        wanted_again = timer_id(features_after.user_id, "morning_start")
    if wanted_again is not None and not features_after.deletion_requested:
        again = after.get(wanted_again) or _wanted(features_after, at, wanted_again)
    if again is not None and again not in commands:
        commands.append(again)
    return commands


def _wanted(features: UserFeatures, at: float, wanted_id: str) -> TimerCommand | None:
    purpose = wanted_id.split(":", 1)[0]
    timers = _morning_timers if purpose == "morning_start" else _habit_timers
    return next((c for c in timers(features, at) if c.timer_id == wanted_id), None)


def forget_timer(user_id: str, deleted_at: datetime, window_s: float) -> TimerCommand:
    """The timer that purges a deleted person's forgotten marker `window_s` after `deleted_at`.

    Until it fires, the marker drops every late signal, reaction and timer of
    theirs (published before the deletion, read after it); then nothing of
    theirs is left in any table.
    """
    return TimerCommand("set", timer_id(user_id, FORGET), FORGET,
                        utc(epoch(deleted_at) + window_s))


def tip_expired_unanswered(features: UserFeatures, decision_id: str | None) -> bool:
    """Whether a fired tip_expired timer (ref = `decision_id`) finds its tip still unanswered.

    If so, the wiring records an `ignored` reaction (apply_feedback, and a
    FeedbackGiven event), which raises fatigue and clears the tip. An answered
    or replaced tip makes the firing a no-op.
    """
    showing = features.showing
    return showing is not None and showing.decision_id == decision_id
