"""Every oO topic, declared once with its record type.

All user topics are keyed by `user_id` and created with the same partition
count (OO_TOPIC_PARTITIONS), so Faust tables fed from them are
co-partitioned: all of one person's state lives on one worker. Changing the
partition count of a live deployment moves users between partitions and is
therefore refused by `ensure_topics` (docs/adr/0003-one-partition-count.md).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    TipDecided,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """A topic: its name, its record type and how Kafka keeps it."""

    name: str
    record: type
    description: str
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False

    @property
    def configs(self) -> dict[str, str]:
        """Topic-level Kafka configs used when the topic is created."""
        if self.compacted:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


SIGNAL_RECORDS: dict[str, type] = {
    "tasks": TaskChanged,
    "habits": HabitLogged,
    "calendar": CalendarChanged,
    "mood": MoodLogged,
    "context": ContextObserved,
    "lifecycle": LifecycleChanged,
}

SIGNALS: dict[str, TopicSpec] = {
    domain: TopicSpec(
        name=f"oo.signals.{domain}",
        record=record,
        description=f"Normalized {domain} signals, keyed by user_id.",
        retention_ms=30 * DAY_MS,
    )
    for domain, record in SIGNAL_RECORDS.items()
}

TIPS_DECIDED = TopicSpec(
    "oo.tips.decided", TipDecided,
    "Every tip decision, with its context snapshot. At least once: a decision id can repeat "
    "(after a worker crash); keep the first.", 30 * DAY_MS
)
FEEDBACK = TopicSpec("oo.feedback", FeedbackGiven, "Reactions to tips.", 90 * DAY_MS)
TIMERS = TopicSpec("oo.timers", TimerScheduled, "Durable per-user timers (set/cancel).", 30 * DAY_MS)
DEADLETTER = TopicSpec(
    "oo.deadletter", DeadLettered, "Messages that failed validation, with the reason.", 30 * DAY_MS
)

ALL_TOPICS: tuple[TopicSpec, ...] = (*SIGNALS.values(), TIPS_DECIDED, FEEDBACK, TIMERS, DEADLETTER)
BY_NAME: dict[str, TopicSpec] = {spec.name: spec for spec in ALL_TOPICS}
