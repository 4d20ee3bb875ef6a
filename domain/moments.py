"""When to speak: moment rules on a trigger, then the guards.

A trigger is a signal that was just folded (`SignalTrigger`) or a durable
timer that fired (`TimerFired`). `detect` finds the moment the trigger makes,
if any, then runs every guard, and returns a `MomentDecision` that says why:
the moment and the guards that passed, or the guard that blocked, or why there
is no moment at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.clock import epoch, hhmm, seconds
from domain.features import UserFeatures
from domain.guards import GUARDS, Guard, GuardResult, check_all

MOMENTS = ("app_opened", "free_after_meeting", "morning_start", "todo_due_soon",
           "habit_window", "low_mood")
TIMER_PURPOSES = ("morning_start", "habit_window", "todo_due_soon", "tip_expired")

LOW_MOOD_AT_MOST = -1
# A meeting "just ended" for this long, and the free time after it must be worth a tip.
JUST_ENDED_S = 15 * 60
MIN_FREE_S = 15 * 60
# A todo is "due soon" when due within this (the timer fires 30 min before, plus slack).
DUE_SOON_S = 45 * 60
# Old triggers are history, not moments: a replayed topic or a worker that was
# down must not fire a burst of tips.
STALE_SIGNAL_S = 15 * 60
STALE_TIMER_S = 60 * 60
# Context kinds that show the person is at their device.
PRESENT_KINDS = frozenset({"app_opened", "page_visible", "device_active"})


@dataclass(frozen=True, slots=True)
class SignalTrigger:
    """A signal record (see topics.records; read by duck typing) and its domain."""

    event: Any
    domain: str

    @property
    def trigger_id(self) -> str:
        """The signal's event id: what the decision id is derived from."""
        return str(self.event.event_id)


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A durable timer that fired: its id, purpose, planned time and what it is about."""

    timer_id: str
    purpose: str
    fire_at: datetime
    ref: str | None = None

    @property
    def trigger_id(self) -> str:
        """Timer id plus planned time: a re-fired timer is the same trigger, the next day's is not."""
        return f"timer:{self.timer_id}:{seconds(self.fire_at)}"


Trigger = SignalTrigger | TimerFired


@dataclass(frozen=True, slots=True)
class Moment:
    """A moment worth a tip: its name, what it is about (task, habit, meeting id) and why."""

    name: str
    ref: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MomentDecision:
    """The outcome of `detect`: the moment found (if any), every guard's verdict, and why."""

    trigger_id: str
    detected: Moment | None
    checks: tuple[GuardResult, ...] = ()
    no_moment: str = ""  # why the trigger makes no moment, when `detected` is None

    @property
    def blocked_by(self) -> GuardResult | None:
        """The first guard that failed, if any."""
        return next((c for c in self.checks if not c.passed), None)

    @property
    def moment(self) -> Moment | None:
        """The moment, when one was detected and no guard blocked it."""
        return self.detected if self.blocked_by is None else None

    @property
    def passed(self) -> tuple[str, ...]:
        """Names of the guards that passed."""
        return tuple(c.name for c in self.checks if c.passed)

    @property
    def why(self) -> str:
        """One line for logs: the moment and its guards, or what stopped it."""
        if self.detected is None:
            return f"no moment: {self.no_moment}"
        blocked = self.blocked_by
        if blocked is not None:
            return f"{self.detected.name} blocked by {blocked.name}: {blocked.reason}"
        return f"{self.detected.name}: {self.detected.detail} (passed {', '.join(self.passed)})"


# --- moment rules: Moment, or a str saying why not ---------------------------

Rule = Callable[[UserFeatures, Any, float], Moment | str]


def low_mood(features: UserFeatures, trigger: SignalTrigger, at: float) -> Moment | str:
    """A mood signal at or below LOW_MOOD_AT_MOST, the latest mood known."""
    if trigger.domain != "mood":
        return "not a mood signal"
    score = trigger.event.score
    if score > LOW_MOOD_AT_MOST:
        return f"mood {score} is not low"
    if features.mood_at is not None and features.mood_at > seconds(trigger.event.occurred_at):
        return "a newer mood is already known"
    return Moment("low_mood", None, f"mood {score} just logged")


def free_after_meeting(features: UserFeatures, trigger: SignalTrigger, at: float) -> Moment | str:
    """A busy event ended under JUST_ENDED_S ago and at least MIN_FREE_S is free ahead.

    Fires on a calendar signal, or on a context signal showing the person at
    their device (that is the usual way to notice a meeting is over).
    """
    if trigger.domain == "context" and trigger.event.kind not in PRESENT_KINDS:
        return f"context {trigger.event.kind} does not show the person present"
    if trigger.domain not in ("calendar", "context"):
        return "not a calendar or context signal"
    window = features.free_window(at)
    if window is None:
        return "in a busy calendar event"
    since, until = window
    if since is None or at - since > JUST_ENDED_S:
        return "no meeting just ended"
    if until is not None and until - at < MIN_FREE_S:
        return f"only {int((until - at) // 60)} min free before the next event"
    ended = features.last_ended_event(at)
    ago = int((at - since) // 60)
    free = "the rest of the day" if until is None else f"{int((until - at) // 60)} min"
    return Moment("free_after_meeting", ended.id if ended else None,
                  f"a meeting ended {ago} min ago, free for {free}")


def app_opened(features: UserFeatures, trigger: SignalTrigger, at: float) -> Moment | str:
    """The person opened the app."""
    if trigger.domain != "context" or trigger.event.kind != "app_opened":
        return "not an app opening"
    return Moment("app_opened", None, "the app was just opened")


def morning_start(features: UserFeatures, trigger: TimerFired, at: float) -> Moment | str:
    """The morning timer: the start of the person's day."""
    wall = features.local_time(at)
    return Moment("morning_start", None, f"{wall:%H:%M} local, the start of the day")


def habit_window(features: UserFeatures, trigger: TimerFired, at: float) -> Moment | str:
    """The usual time of a habit not yet done (nor skipped) today."""
    habit = features.habits.get(trigger.ref or "")
    if habit is None:
        return "the habit no longer exists"
    label = habit.name or "a habit"
    if features.habit_settled_on_day_of(habit, at):
        return f"{label} was already done or skipped today"
    usual = "" if habit.usual_minute is None else f" ({hhmm(habit.usual_minute)})"
    streak = f", streak {habit.streak}" if habit.streak else ""
    return Moment("habit_window", habit.id, f"usual time for {label}{usual}, not done today{streak}")


def todo_due_soon(features: UserFeatures, trigger: TimerFired, at: float) -> Moment | str:
    """An open todo due within DUE_SOON_S (its due time may have moved since the timer was set)."""
    todo = features.todos.get(trigger.ref or "")
    if todo is None:
        return "the todo is no longer open"
    if todo.due_at is None:
        return "the todo no longer has a due time"
    if not at <= todo.due_at <= at + DUE_SOON_S:
        return "the todo is not due soon any more"
    minutes = int((todo.due_at - at) // 60)
    return Moment("todo_due_soon", todo.id, f"{todo.title or 'a todo'} is due in {minutes} min")


TIMER_RULES: dict[str, Rule] = {
    "morning_start": morning_start,
    "habit_window": habit_window,
    "todo_due_soon": todo_due_soon,
}


def find_moment(features: UserFeatures, trigger: Trigger, at: float) -> Moment | str:
    """The moment `trigger` makes at `at`, or why it makes none."""
    if isinstance(trigger, TimerFired):
        late = at - seconds(trigger.fire_at)
        if late > STALE_TIMER_S:
            return f"timer fired {int(late // 60)} min late"
        if trigger.purpose == "tip_expired":
            return "a tip expiring is bookkeeping, not a moment"
        rule = TIMER_RULES.get(trigger.purpose)
        return rule(features, trigger, at) if rule else f"unknown timer purpose {trigger.purpose}"
    age = at - seconds(trigger.event.occurred_at)
    if age > STALE_SIGNAL_S:
        return f"signal is {int(age // 60)} min old"
    if trigger.domain == "mood":
        return low_mood(features, trigger, at)
    if trigger.domain in ("calendar", "context"):
        # The more specific moment first: opening the app right after a meeting
        # is the free-after-meeting moment.
        found = free_after_meeting(features, trigger, at)
        if isinstance(found, Moment) or trigger.domain == "calendar":
            return found
        if trigger.event.kind == "app_opened":
            return app_opened(features, trigger, at)
        return found
    return f"{trigger.domain} signals make no moment by themselves"


def detect(features: UserFeatures, trigger: Trigger, now: datetime,
           guards: tuple[Guard, ...] = GUARDS) -> MomentDecision:
    """Find the moment `trigger` makes at `now`, and check every guard against it.

    `features` must already include the trigger's own signal (fold first).
    Guards run only when a moment is found; all of them run, so the decision
    lists every reason to stay silent, the first one being `blocked_by`.
    """
    at = epoch(now)
    found = find_moment(features, trigger, at)
    if not isinstance(found, Moment):
        return MomentDecision(trigger.trigger_id, None, (), found)
    return MomentDecision(trigger.trigger_id, found, check_all(features, at, guards))
