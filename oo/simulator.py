"""Synthetic people and their days, as the normalized signals oO would receive.

`simulate_people(n, start, days, seed)` yields `(topic, record)` pairs in
event-time order for `n` seeded people: time zones, wake times, workday
meetings, todos with due dates (some completed), habits done near their usual
time, moods, and app opens. Deterministic for a seed: the same call yields the
same events with the same ids, so a re-run is a redelivery, not new data.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time as time_module
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer

from topics.catalog import SIGNALS
from topics.codec import encode, format_time
from topics.records import (
    CalendarChanged,
    ContextObserved,
    Event,
    HabitLogged,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
)

TIME_ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London",
              "America/Los_Angeles", "Australia/Sydney", "UTC")
HABITS = (("water", "Drink a glass of water"), ("walk", "Walk 10 minutes"),
          ("read", "Read 10 pages"), ("stretch", "Stretch"), ("journal", "Write three lines"))
TODOS = ("Call the dentist", "Pay the electricity bill", "Reply to Sam", "Book train tickets",
         "Buy birthday present", "Renew passport", "Water the plants", "Send the report",
         "Fix the bike light", "Plan the weekend", "Order printer ink", "Back up the laptop")
SOURCE = "simulator"


@dataclass(frozen=True)
class Person:
    """One synthetic person's hidden routine."""

    user_id: str
    zone: ZoneInfo
    wake_minute: int
    sleep_minute: int
    works: bool
    habits: tuple[tuple[str, str, int], ...]  # id, name, usual minute
    mood_base: float
    app_opens: int

    @classmethod
    def generate(cls, index: int, rng: random.Random, prefix: str = "sim",
                 time_zone: str | None = None) -> Person:
        picked = rng.sample(HABITS, k=rng.randint(1, 3))
        zone = rng.choice(TIME_ZONES)  # drawn even when overridden, so seeds stay comparable
        return cls(
            user_id=person_id(prefix, index),
            zone=ZoneInfo(time_zone or zone),
            wake_minute=rng.randint(6 * 60, 8 * 60 + 30),
            sleep_minute=rng.randint(22 * 60, 23 * 60 + 30),
            works=rng.random() < 0.8,
            habits=tuple((hid, name, rng.randint(7 * 60, 21 * 60)) for hid, name in picked),
            mood_base=rng.uniform(-0.5, 1.0),
            app_opens=rng.randint(2, 6),
        )


def person_id(prefix: str, index: int) -> str:
    """The user id of simulated person `index` in namespace `prefix` (a stable UUID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"oo:{prefix}:{index}"))


def simulate_people(n: int, start: datetime, days: int, seed: int = 1,
                    prefix: str = "sim", time_zone: str | None = None) -> Iterator[tuple[str, Event]]:
    """All people's events from `start` for `days` days, merged in event-time order.

    `time_zone` puts everyone in one zone (the demo person lives where you are).
    """
    rng = random.Random(seed)
    people = [Person.generate(i, rng, prefix, time_zone) for i in range(n)]
    streams = [_person_events(p, start, days, seed) for p in people]
    merged = heapq.merge(*streams, key=lambda pair: (pair[1].occurred_at, pair[1].event_id))
    yield from merged


def _person_events(person: Person, start: datetime, days: int, seed: int) -> Iterator[tuple[str, Event]]:
    rng = random.Random(f"{seed}:{person.user_id}")
    run = int(start.timestamp())
    events: list[tuple[str, Event]] = []
    counter = 0

    def emit(domain: str, cls: type, at: datetime, **fields: object) -> None:
        nonlocal counter
        counter += 1
        if at < start:
            return
        # Unique per run (the start), the same for the same call (a replay is a duplicate).
        record = cls(event_id=f"{person.user_id}-{run}-{counter}", user_id=person.user_id,
                     occurred_at=at.astimezone(UTC), source=SOURCE, **fields)
        events.append((SIGNALS[domain].name, record))

    first_day = start.astimezone(person.zone).date()
    emit("lifecycle", LifecycleChanged, start, change="user_created",
         time_zone=person.zone.key, quiet_start_minute=person.sleep_minute % 1440,
         quiet_end_minute=person.wake_minute, daily_budget=3)
    for habit_id, name, minute in person.habits:
        emit("habits", HabitLogged, start, change="defined", habit_id=habit_id, name=name,
             usual_minute=minute)
    # Having just joined, the person looks at the app.
    emit("context", ContextObserved, start + timedelta(minutes=1), kind="app_opened",
         device="phone")
    open_tasks: list[str] = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        local = _local(person, day)
        wake = local(person.wake_minute)
        emit("context", ContextObserved, wake + timedelta(minutes=rng.randint(1, 20)),
             kind="app_opened", device="phone")
        if person.works and day.weekday() < 5:
            for hour in sorted(rng.sample(range(9, 17), k=rng.randint(1, 4))):
                begins = local(hour * 60 + rng.choice((0, 30)))
                emit("calendar", CalendarChanged, local(max(person.wake_minute - 30, 0)),
                     change="scheduled", calendar_event_id=f"{person.user_id}-{day}-{hour}",
                     starts_at=begins.astimezone(UTC),
                     ends_at=(begins + timedelta(minutes=rng.choice((30, 45, 60)))).astimezone(UTC))
        for _ in range(rng.randint(0, 3)):
            task_id = f"{person.user_id}-t{counter}"
            created = local(rng.randint(person.wake_minute, 20 * 60))
            emit("tasks", TaskChanged, created, change="created", task_id=task_id,
                 title=rng.choice(TODOS), priority=rng.randint(1, 4),
                 due_at=(created + timedelta(hours=rng.randint(2, 30))).astimezone(UTC))
            open_tasks.append(task_id)
        if open_tasks and rng.random() < 0.6:
            done = open_tasks.pop(rng.randrange(len(open_tasks)))
            emit("tasks", TaskChanged, local(rng.randint(10 * 60, 21 * 60)), change="completed",
                 task_id=done)
        for habit_id, _, minute in person.habits:
            if rng.random() < 0.7:
                emit("habits", HabitLogged, local(minute + rng.randint(-30, 45)), change="done",
                     habit_id=habit_id)
        for _ in range(rng.randint(1, 2)):
            score = max(-2, min(2, round(rng.gauss(person.mood_base, 1.0))))
            emit("mood", MoodLogged, local(rng.randint(person.wake_minute, 21 * 60)), score=score)
        for _ in range(person.app_opens - 1):
            opened = local(rng.randint(person.wake_minute + 60, person.sleep_minute))
            emit("context", ContextObserved, opened, kind="app_opened", device="phone")
            emit("context", ContextObserved, opened + timedelta(minutes=rng.randint(1, 8)),
                 kind="page_hidden", device="phone")
    end = start + timedelta(days=days)
    events = [e for e in events if e[1].occurred_at < end]
    events.sort(key=lambda pair: (pair[1].occurred_at, pair[1].event_id))
    yield from events


def _local(person: Person, day: date):
    def at(minute: int) -> datetime:
        minute = max(0, min(minute, 1439))
        return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=person.zone)

    return at


async def run_simulation(
    bootstrap_servers: str,
    *,
    users: int,
    days: int,
    speed: float,
    start: datetime,
    seed: int = 1,
    prefix: str = "sim",
    time_zone: str | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Produce the simulated signals to Kafka, keyed by user; return how many were sent.

    `speed` is simulated seconds per wall-clock second (60 = an hour a
    minute); 0 sends as fast as the broker takes them.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5,
                                enable_idempotence=True)
    await producer.start()
    sent = 0
    wall0 = time_module.monotonic()
    last_report = wall0
    try:
        pending: list[asyncio.Future[Any]] = []
        for topic, record in simulate_people(users, start, days, seed, prefix, time_zone):
            if speed > 0:
                due = wall0 + (record.occurred_at - start).total_seconds() / speed
                delay = due - time_module.monotonic()
                if delay > 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(delay)
            pending.append(await producer.send(topic, value=encode(record), key=record.user_id.encode()))
            sent += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
            now = time_module.monotonic()
            if now - last_report >= 5:
                last_report = now
                log(f"simulate: {sent} signals sent, simulated time {format_time(record.occurred_at)}")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    log(f"simulate: done, {sent} signals for {users} people over {days} day(s) "
        f"in {time_module.monotonic() - wall0:.1f}s")
    return sent
