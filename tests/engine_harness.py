"""The engine on in-memory tables and topics, for unit tests of its wiring.

The engine runs on a real Faust app's objects, with its tables and output
topics swapped for in-memory ones: a table that keeps every write (its
changelog), and topics whose sends stay unacknowledged until the test answers
them. A crash, a restart or a rebalance is a new `Engine` on the same table
contents, as after a restore from the changelogs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import faust

from agents.counters import Counters
from agents.engine import Engine
from agents.schedule import decode_entry
from oo.settings import Settings
from tests.conftest import oo_test_environ
from topics.catalog import FEEDBACK, SIGNALS, TIMERS
from topics.codec import encode
from topics.records import TimerScheduled


class Table(dict):
    """A table that also keeps its changelog: every write, tombstones as None."""

    def __init__(self) -> None:
        super().__init__()
        self.changelog: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        super().__setitem__(key, value)
        self.changelog.append((key, value))

    def __delitem__(self, key: bytes) -> None:
        super().__delitem__(key)
        self.changelog.append((key, None))

    def last_write(self, key: bytes) -> tuple[bool, bytes | None]:
        """(whether `key` was ever written, its last changelog value)."""
        values = [value for k, value in self.changelog if k == key]
        return bool(values), values[-1] if values else None


class Topic:
    """An output topic whose sends stay unacknowledged until the test answers them."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, asyncio.Future]] = []

    async def send(self, *, key: bytes, value: bytes, headers: Any = None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.sent.append((key, value, future))
        return future

    def answer_all(self) -> None:
        for _, _, future in self.sent:
            if not future.done():
                future.set_result(None)


class Dead:
    """The dead-letter sink: keeps the reasons."""

    def __init__(self) -> None:
        self.letters: list[str] = []

    async def put(self, message: Any, reason: str) -> None:
        self.letters.append(reason)


@dataclasses.dataclass
class Tables:
    """What survives a crash: the two tables (restored from their changelogs)."""

    features: Table = dataclasses.field(default_factory=Table)
    timers: Table = dataclasses.field(default_factory=Table)


def engine(tmp_path: Any, tables: Tables, **overrides: Any) -> Engine:
    """A fresh engine process on `tables`; settings overridden by `overrides`."""
    settings = dataclasses.replace(Settings.from_env(oo_test_environ()), state_dir=tmp_path,
                                   app_id="oo-unit", policy="random", shadow_policies=(),
                                   **overrides)
    app = faust.App(f"oo-unit-{uuid.uuid4().hex[:8]}", store="memory://")
    made = Engine(app, settings, Dead(), Counters())  # type: ignore[arg-type]
    made.features = tables.features  # type: ignore[assignment]
    made.timers = tables.timers  # type: ignore[assignment]
    made.decided = Topic()  # type: ignore[assignment]
    made.feedback = Topic()  # type: ignore[assignment]
    made.timer_topic = Topic()  # type: ignore[assignment]
    return made


def message(topic: str, key: bytes, value: bytes, partition: int = 0) -> SimpleNamespace:
    """A consumed message as the engine's agent hands it over."""
    return SimpleNamespace(topic=topic, key=key, value=value, partition=partition, offset=0,
                           headers=[])


def signal(domain: str, record: Any) -> SimpleNamespace:
    return message(SIGNALS[domain].name, record.user_id.encode(), encode(record))


def reaction(record: Any) -> SimpleNamespace:
    return message(FEEDBACK.name, record.user_id.encode(), encode(record))


def firings(tables: Tables, key: bytes, *, purposes: set[str] | None = None,
            ) -> list[SimpleNamespace]:
    """`fire` commands for the person's timers in the table (all, or those of `purposes`),
    as the firing loop of the partition's owner would send them when due."""
    _, timers = decode_entry(tables.timers.get(key))
    commands = []
    for timer_id, (purpose, fire_at, ref) in sorted(timers.items()):
        if purposes is not None and purpose not in purposes:
            continue
        record = TimerScheduled(
            event_id=f"fire-{timer_id}-{int(fire_at)}", user_id=key.decode(),
            occurred_at=datetime.now(UTC), source="test", action="fire", timer_id=timer_id,
            purpose=purpose, fire_at=datetime.fromtimestamp(fire_at, UTC), ref=ref)
        commands.append(message(TIMERS.name, key, encode(record)))
    return commands


async def settle() -> None:
    """Let done-callbacks of answered sends run (they run on the next loop turn)."""
    await asyncio.sleep(0)
