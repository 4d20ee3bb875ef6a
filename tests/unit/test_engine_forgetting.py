"""Deletion wins every race: a forgotten person's late signals, reactions and timers,
read after the deletion by this worker or the partition's next owner, leave nothing
behind (docs/adr/0012-durable-forgetting.md).

Kafka orders a person's events within a topic, not across topics: a signal published
before the deletion can be read after it, and a worker can crash or lose the partition
in between. The engine runs here on in-memory tables (tests/engine_harness.py); a
restart is a new engine on the same tables, as after a restore from the changelogs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agents.engine import Engine
from agents.schedule import decode_entry
from domain.timers import FORGET
from tests.engine_harness import Tables, engine, firings, message, reaction, signal
from topics.catalog import TIMERS
from topics.codec import decode, encode
from topics.records import (
    ContextObserved,
    FeedbackGiven,
    LifecycleChanged,
    MoodLogged,
    TaskChanged,
    TimerScheduled,
    TipDecided,
)

pytestmark = pytest.mark.unit
USER = "5e0f3c1a-8d7b-4c2e-9f6a-1b2c3d4e5f60"
KEY = USER.encode()
AT = datetime(2027, 6, 2, 10, 0, tzinfo=UTC)  # a Wednesday morning, in the future
WINDOW_S = 3600


def created() -> Any:
    return signal("lifecycle", LifecycleChanged(
        event_id=f"{USER}-created", user_id=USER, occurred_at=AT, source="test",
        change="user_created", time_zone="UTC", quiet_start_minute=22 * 60,
        quiet_end_minute=7 * 60, daily_budget=6))


def deleted(minutes: int = 30) -> Any:
    return signal("lifecycle", LifecycleChanged(
        event_id=f"{USER}-deleted", user_id=USER, occurred_at=AT + timedelta(minutes=minutes),
        source="test", change="deletion_requested"))


def opened(n: int) -> Any:
    return signal("context", ContextObserved(
        event_id=f"{USER}-open-{n}", user_id=USER, occurred_at=AT + timedelta(minutes=5 * n),
        source="test", kind="app_opened"))


def task(n: int) -> Any:
    return signal("tasks", TaskChanged(
        event_id=f"{USER}-task-{n}", user_id=USER, occurred_at=AT + timedelta(minutes=n),
        source="test", change="created", task_id=f"t{n}", title=f"Task {n}",
        due_at=AT + timedelta(hours=2 + n), priority=3))


def mood(n: int) -> Any:
    return signal("mood", MoodLogged(
        event_id=f"{USER}-mood-{n}", user_id=USER, occurred_at=AT + timedelta(minutes=n),
        source="test", score=-2))


def late_timer_set() -> Any:
    record = TimerScheduled(
        event_id=f"{USER}-late-set", user_id=USER, occurred_at=AT, source="test",
        action="set", timer_id="morning_start:late", purpose="morning_start",
        fire_at=AT + timedelta(days=1))
    return message(TIMERS.name, KEY, encode(record))


def answer(decision_id: str, n: int) -> Any:
    return reaction(FeedbackGiven(
        event_id=f"{USER}-answer-{n}", user_id=USER, occurred_at=AT + timedelta(minutes=n),
        source="test", decision_id=decision_id, tip_id="advice:x", reaction="dismiss"))


def assert_nothing_left(tables: Tables) -> None:
    for name, table in (("features", tables.features), ("timers", tables.timers)):
        assert KEY not in table, f"{name} still holds the person: {table[KEY]!r}"
        written, last = table.last_write(KEY)
        assert not written or last is None, f"{name}'s changelog does not end with a tombstone"


async def purge(worker: Engine, tables: Tables) -> None:
    """The forget window ends: the purge timer fires."""
    for fire in firings(tables, KEY, purposes={FORGET}):
        await worker.handle(fire)


# --- the race the pipeline test could hit, made deterministic -------------------


async def test_a_signal_read_after_the_deletion_by_the_next_owner_is_dropped(tmp_path):
    tables = Tables()
    first = engine(tmp_path, tables, forget_window_s=WINDOW_S)
    await first.handle(created())
    await first.handle(opened(0))
    # The app opening published before the deletion is held (another topic, not read
    # yet); the deletion is read, and the partition moves to a new owner (a restart).
    await first.handle(deleted())
    second = engine(tmp_path, tables, forget_window_s=WINDOW_S)
    await second.handle(opened(1))
    assert b"last_app_open_at" not in tables.features.get(KEY, b""), \
        "the late signal brought them back"
    assert second.counters.get("oo_signals_forgotten_total", "domain", "context") == 1
    assert orjson.loads(tables.features[KEY]) == {"forgotten_at": int((AT + timedelta(
        minutes=30)).timestamp())}, "the marker holds the deletion time and nothing else"

    await purge(second, tables)
    assert_nothing_left(tables)
    assert second.counters.get("oo_users_purged_total") == 1


async def test_a_deletion_read_first_keeps_a_marker_even_with_no_state(tmp_path):
    tables = Tables()
    await engine(tmp_path, tables).handle(deleted())
    assert decode_entry(tables.timers[KEY])[1], "no purge timer for the marker"
    later = engine(tmp_path, tables)
    await later.handle(opened(0))
    await later.handle(created())  # its sign-up, on the deletion's own topic, redelivered
    assert set(orjson.loads(tables.features[KEY])) == {"forgotten_at"}


async def test_late_reactions_and_timer_commands_of_a_forgotten_person_write_nothing(tmp_path):
    tables = Tables()
    first = engine(tmp_path, tables)
    await first.handle(created())
    await first.handle(opened(0))
    (_, value, _), = first.decided.sent
    decision = decode(TipDecided, value)
    await first.handle(deleted())
    writes = len(tables.features.changelog), len(tables.timers.changelog)

    second = engine(tmp_path, tables)
    await second.handle(answer(decision.decision_id, 1))
    await second.handle(late_timer_set())
    for fire in firings(tables, KEY, purposes={"morning_start"}):
        await second.handle(fire)
    assert (len(tables.features.changelog), len(tables.timers.changelog)) == writes
    assert second.decided.sent == [] and second.feedback.sent == [], \
        "something of a forgotten person was published"


async def test_a_forgotten_persons_unconfirmed_decision_is_not_sent_again(tmp_path):
    tables = Tables()
    first = engine(tmp_path, tables)
    await first.handle(created())
    await first.handle(opened(0))  # decided; the send never confirmed (a crash)
    second = engine(tmp_path, tables)
    await second.handle(deleted())
    await second.handle(opened(0))  # the uncommitted signal again
    assert second.decided.sent == []


# --- every interleaving: a seeded property test --------------------------------


@dataclass
class World:
    """The person's topics (each in order), the engine processes that come and go."""

    tmp_path: Any
    tables: Tables = field(default_factory=Tables)
    queues: dict[str, deque] = field(default_factory=dict)
    handled: dict[str, list] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)
    forgotten_at_send: tuple[int, int] | None = None  # (engines, sends) when it was handled
    answers: int = 0

    def __post_init__(self) -> None:
        self.restart()

    @property
    def current(self) -> Engine:
        return self.engines[-1]

    def restart(self) -> None:
        self.engines.append(engine(self.tmp_path, self.tables, forget_window_s=WINDOW_S))

    def sends(self) -> int:
        return sum(len(e.decided.sent) + len(e.feedback.sent) for e in self.engines)

    def decisions(self) -> list[str]:
        return [decode(TipDecided, v).decision_id for e in self.engines for _, v, _ in e.decided.sent]

    async def take(self, topic: str) -> None:
        queue = self.queues[topic]
        if not queue:
            return
        item = queue.popleft()
        if topic == "feedback":  # a reaction to the newest tip the person saw, if any
            self.answers += 1
            decisions = self.decisions()
            item = answer(decisions[-1] if decisions else f"{USER}-nothing", self.answers)
        await self.handle(topic, item)

    async def handle(self, topic: str, item: Any) -> None:
        self.handled.setdefault(topic, []).append(item)
        await self.current.handle(item)
        if self.forgotten_at_send is None and self.current.counters.get("oo_users_forgotten_total"):
            self.forgotten_at_send = (len(self.engines), self.sends())

    async def redeliver(self, topic: str) -> None:
        """At least once: the last message of `topic` again (its offset was not committed)."""
        if self.handled.get(topic):
            await self.handle(topic, self.handled[topic][-1])


STEPS = ("lifecycle", "context", "context", "tasks", "mood", "feedback", "timers",
         "schedule_firings", "late_timer_set", "restart", "restart", "answer_sends", "redeliver")


@st.composite
def schedules(draw: Any) -> tuple[dict[str, list], list[tuple[str, str]], list[str]]:
    lifecycle = [created(), deleted(minutes=draw(st.integers(0, 90)))]
    if not draw(st.integers(0, 3)):
        lifecycle.insert(0, deleted(minutes=0))  # the deletion before the sign-up: redelivery
    queues = {
        "lifecycle": lifecycle,
        "context": [opened(n) for n in range(draw(st.integers(0, 4)))],
        "tasks": [task(n) for n in range(draw(st.integers(0, 2)))],
        "mood": [mood(n) for n in range(draw(st.integers(0, 2)))],
        "feedback": [None] * draw(st.integers(0, 3)),
        "timers": [],
    }
    topics = st.sampled_from(("lifecycle", "context", "tasks", "mood", "feedback", "timers"))
    steps = draw(st.lists(st.tuples(st.sampled_from(STEPS), topics), min_size=4, max_size=30))
    if draw(st.integers(0, 3)):  # usually the sign-up is read first, and a tip or two follow
        steps = [("lifecycle", "lifecycle"), ("context", "context"), ("answer_sends", ""),
                 ("context", "context"), *steps]
    drain = draw(st.permutations(["lifecycle", "context", "tasks", "mood", "feedback", "timers"]))
    return queues, steps, drain


async def run(world: World, queues: dict[str, list], steps: list[tuple[str, str]],
              drain: list[str]) -> None:
    world.queues = {name: deque(items) for name, items in queues.items()}
    for step, topic in steps:
        if step == "restart":
            world.restart()
        elif step == "answer_sends":
            world.current.decided.answer_all()
            world.current.feedback.answer_all()
            await asyncio.sleep(0)
        elif step == "redeliver":
            await world.redeliver(topic)
        elif step == "schedule_firings":  # due timers' fire commands, read later
            world.queues["timers"].extend(
                firings(world.tables, KEY, purposes={"morning_start", "habit_window",
                                                     "todo_due_soon", "tip_expired"}))
        elif step == "late_timer_set":
            world.queues["timers"].append(late_timer_set())
        else:
            await world.take(step)
    for topic in drain:  # everything published before the deletion is read in the window
        while world.queues[topic]:
            await world.take(topic)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(schedule=schedules())
def test_deletion_interleaved_with_signals_timers_reactions_and_restarts_leaves_nothing(
        tmp_path, schedule):
    queues, steps, drain = schedule
    world = World(tmp_path)

    async def scenario() -> None:
        await run(world, queues, steps, drain)
        assert world.forgotten_at_send is not None, "the deletion was never handled"
        dropped = sum(e.counters.get("oo_signals_forgotten_total", "domain", d)
                      for e in world.engines for d in ("context", "tasks", "mood", "lifecycle"))
        event(f"late signals dropped: {min(dropped, 3)}+")
        event(f"restarted after the deletion: {len(world.engines) > world.forgotten_at_send[0]}")
        event(f"decisions made before it: {min(len(world.decisions()), 2)}+")
        world.restart()  # the window ends on whichever worker owns the partition then
        await purge(world.current, world.tables)
        assert_nothing_left(world.tables)
        _, sends_then = world.forgotten_at_send
        assert world.sends() == sends_then, "something of theirs was published after deletion"

    asyncio.run(scenario())
