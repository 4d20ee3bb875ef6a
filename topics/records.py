"""Record types of every oO topic: the contracts.

Every user event carries `event_id` (idempotency key), `user_id` (also the
message key, so one user's events share a partition), `occurred_at` (event
time, UTC), `source` (who produced it) and `version` (schema version of the
record). Events are facts, named in the past tense.

These classes are the only place a record shape is defined. A field is never
renamed or retyped in place: a breaking change is a new record class with a
new version (see docs/adr/0002-records-are-dataclasses-with-own-codec.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from topics.codec import Limit

Id = Annotated[str, Limit(min_len=1, max_len=128)]
Title = Annotated[str, Limit(min_len=1, max_len=500)]
Body = Annotated[str, Limit(min_len=0, max_len=2000)]
MinuteOfDay = Annotated[int, Limit(low=0, high=1439)]



@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every user event carries."""

    event_id: Id
    user_id: Id
    occurred_at: datetime
    source: Annotated[str, Limit(min_len=1, max_len=64)]
    version: Annotated[int, Limit(low=1, high=1)] = 1


# --- signals: oo.signals.<domain> -------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskChanged(Event):
    """A task in the person's task list was created, changed, completed or removed."""

    change: Literal["created", "updated", "completed", "reopened", "deleted"]
    task_id: Id
    title: Title | None = None
    due_at: datetime | None = None
    priority: Annotated[int, Limit(low=1, high=4)] = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class HabitLogged(Event):
    """A habit was defined, done, skipped or removed."""

    change: Literal["defined", "done", "skipped", "removed"]
    habit_id: Id
    name: Title | None = None
    usual_minute: MinuteOfDay | None = None  # usual local time of day, minutes after midnight


@dataclass(frozen=True, slots=True, kw_only=True)
class CalendarChanged(Event):
    """A calendar event was scheduled, moved or cancelled."""

    change: Literal["scheduled", "updated", "cancelled"]
    calendar_event_id: Id
    starts_at: datetime
    ends_at: datetime
    busy: bool = True

    def __post_init__(self) -> None:
        if self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class MoodLogged(Event):
    """The person logged how they feel, from -2 (low) to 2 (great)."""

    score: Annotated[int, Limit(low=-2, high=2)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextObserved(Event):
    """Device or page context: the app opened, a page shown or hidden, the device idle."""

    kind: Literal["app_opened", "page_visible", "page_hidden", "device_idle", "device_active"]
    device: Annotated[str, Limit(min_len=1, max_len=64)] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleChanged(Event):
    """The person's account changed: created, preferences changed, deletion requested."""

    change: Literal["user_created", "preferences_changed", "deletion_requested"]
    time_zone: Annotated[str, Limit(min_len=1, max_len=64)] | None = None
    quiet_start_minute: MinuteOfDay | None = None
    quiet_end_minute: MinuteOfDay | None = None
    daily_budget: Annotated[int, Limit(low=0, high=24)] | None = None
    kinds: Annotated[list[Literal["todo", "advice"]], Limit(max_len=2)] | None = None


# --- decisions, feedback, timers --------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Tip:
    """The one thing oO says: a todo from the person's tasks or an advice."""

    id: Id
    kind: Literal["todo", "advice"]
    title: Title
    body: Body = ""
    source: Annotated[str, Limit(min_len=1, max_len=64)]
    deep_link: Annotated[str, Limit(min_len=1, max_len=2000)] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TipDecided(Event):
    """The engine decided to give `tip` at `moment`; `decision_id` is the idempotency key."""

    decision_id: Id
    triggered_by: Id  # event_id of the signal or timer that made the moment
    moment: Annotated[str, Limit(min_len=1, max_len=64)]
    policy: Annotated[str, Limit(min_len=1, max_len=64)]
    propensity: Annotated[float, Limit(low=0.0, high=1.0)]
    reason: Annotated[str, Limit(min_len=1, max_len=500)]
    tip: Tip
    context_snapshot: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackGiven(Event):
    """The person (or the absence of an answer) reacted to a tip."""

    decision_id: Id
    tip_id: Id
    reaction: Literal["delivered", "seen", "done", "ack", "save", "snooze", "dismiss", "ignored"]
    dwell_ms: Annotated[int, Limit(low=0, high=86_400_000)] | None = None
    snooze_until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerScheduled(Event):
    """Set, cancel, or fire a durable timer for `purpose` of the user at `fire_at`.

    `fire` is sent by the worker that owns the user's partition when the timer
    is due; the engine confirms it against the timers table (a repeat is a no-op).
    """

    action: Literal["set", "cancel", "fire"]
    timer_id: Id
    purpose: Literal["morning_start", "habit_window", "todo_due_soon", "tip_expired", "forget"]
    fire_at: datetime
    ref: Id | None = None  # what the timer is about: a task, habit or decision id


# --- dead letters ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLettered:
    """A message that failed validation, kept with the reason and its raw bytes.

    `event_id` is derived from topic/partition/offset, so a re-delivered bad
    message yields the same dead letter id. `raw` and `key` are base64.
    """

    event_id: Id
    user_id: Id | None
    occurred_at: datetime
    source: Annotated[str, Limit(min_len=1, max_len=64)]
    version: Annotated[int, Limit(low=1, high=1)] = 1
    topic: Annotated[str, Limit(min_len=1, max_len=249)]
    partition: Annotated[int, Limit(low=0)]
    offset: Annotated[int, Limit(low=0)]
    key: Annotated[str, Limit(min_len=0, max_len=1024)] | None
    reason: Annotated[str, Limit(min_len=1, max_len=1000)]
    raw: Annotated[str, Limit(min_len=0, max_len=200_000)]
