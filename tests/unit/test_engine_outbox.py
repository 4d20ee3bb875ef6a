"""The engine's outbox: a decision its state records is never lost to a crash
(docs/adr/0010-decisions-before-state.md).

The engine runs on a real Faust app's objects, with its tables and output topic
swapped for in-memory ones whose sends the test acknowledges (or not) by hand:
the crash is a new Engine on the same table contents, as after a restore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import faust
import orjson
import pytest

from agents.counters import Counters
from agents.engine import Engine
from agents.state import load_entry
from oo.settings import Settings
from tests.conftest import oo_test_environ
from topics.catalog import SIGNALS
from topics.codec import decode, encode
from topics.records import ContextObserved, LifecycleChanged, TipDecided

pytestmark = pytest.mark.unit
USER = "0b7d6a52-3f7e-4d55-9a51-8d1c0e2f4a10"
KEY = USER.encode()
AT = datetime(2027, 6, 2, 10, 0, tzinfo=UTC)  # a Wednesday morning, in the future


class Topic:
    """An output topic whose sends stay unacknowledged until the test answers them."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, asyncio.Future]] = []

    async def send(self, *, key: bytes, value: bytes, headers=None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.sent.append((key, value, future))
        return future


class Dead:
    def __init__(self) -> None:
        self.letters: list[str] = []

    async def put(self, message, reason: str) -> None:
        self.letters.append(reason)


def engine(tmp_path, table: dict) -> Engine:
    settings = dataclasses.replace(Settings.from_env(oo_test_environ()), state_dir=tmp_path,
                                   app_id="oo-unit", policy="random", shadow_policies=())
    app = faust.App(f"oo-unit-{uuid.uuid4().hex[:8]}", store="memory://")
    made = Engine(app, settings, Dead(), Counters())  # type: ignore[arg-type]
    made.features = table  # type: ignore[assignment]
    made.timers = {}  # type: ignore[assignment]
    made.decided = Topic()  # type: ignore[assignment]
    made.feedback = Topic()  # type: ignore[assignment]
    made.timer_topic = Topic()  # type: ignore[assignment]
    return made


def message(domain: str, record) -> SimpleNamespace:
    return SimpleNamespace(topic=SIGNALS[domain].name, key=KEY, value=encode(record),
                           partition=0, offset=0, headers=[])


def account() -> SimpleNamespace:
    return message("lifecycle", LifecycleChanged(
        event_id=f"{USER}-created", user_id=USER, occurred_at=AT, source="test",
        change="user_created", time_zone="UTC", quiet_start_minute=22 * 60,
        quiet_end_minute=7 * 60, daily_budget=5))


def opened(n: int) -> SimpleNamespace:
    return message("context", ContextObserved(
        event_id=f"{USER}-open-{n}", user_id=USER, occurred_at=AT.replace(hour=10 + 2 * n),
        source="test", kind="app_opened"))


async def settle() -> None:
    await asyncio.sleep(0)  # done-callbacks run on the next loop turn


def outbox_of(table: dict) -> list[str]:
    return [entry.decision_id for entry in load_entry(table[KEY])[1]]


async def decided_once(tmp_path) -> tuple[dict, Engine, bytes, asyncio.Future]:
    """An engine that made one decision (an app opening) whose send is not answered yet."""
    table: dict = {}
    worker = engine(tmp_path, table)
    await worker.handle(account())
    await worker.handle(opened(0))
    (key, value, answer), = worker.decided.sent
    assert key == KEY
    return table, worker, value, answer


async def test_a_decision_the_crash_left_unconfirmed_is_sent_again_on_redelivery(tmp_path):
    table, _crashed, value, _unanswered = await decided_once(tmp_path)
    decision = decode(TipDecided, value)
    assert outbox_of(table) == [decision.decision_id]

    # SIGKILL: the state (with its outbox) reached the changelog, the decision did not.
    second = engine(tmp_path, table)
    await second.handle(opened(0))  # the uncommitted signal again: a duplicate to the fold
    assert second.counters.get("oo_signals_duplicate_total", "domain", "context") == 1
    (key_again, value_again, answer), = second.decided.sent
    assert (key_again, value_again) == (KEY, value), "the same decision, byte for byte"
    assert second.counters.get("oo_decisions_resent_total") == 1

    answer.set_result(None)
    await settle()
    await second.handle(opened(1))  # the next state written no longer carries it
    assert decision.decision_id not in outbox_of(table)


async def test_a_confirmed_decision_leaves_the_state_and_is_never_sent_twice(tmp_path):
    table, worker, value, answer = await decided_once(tmp_path)
    first_id = decode(TipDecided, value).decision_id
    await worker.handle(opened(0))  # redelivered while the send is in flight: nothing to send
    assert len(worker.decided.sent) == 1
    answer.set_result(None)
    await settle()
    await worker.handle(opened(1))
    assert first_id not in outbox_of(table)
    later = engine(tmp_path, table)  # a later owner of the partition
    await later.handle(opened(0))
    assert later.counters.get("oo_decisions_resent_total") == 0
    assert all(decode(TipDecided, v).decision_id != first_id for _, v, _ in later.decided.sent)


async def test_a_failed_send_is_retried_by_the_next_event_of_the_person(tmp_path):
    _, worker, value, answer = await decided_once(tmp_path)
    answer.set_exception(RuntimeError("broker said no"))
    await settle()
    await worker.handle(opened(1))
    resent = [v for _, v, _ in worker.decided.sent[1:] if v == value]
    assert resent, "the unconfirmed decision was not sent again"
    assert worker.counters.get("oo_decisions_resent_total") == 1


async def test_the_outbox_rides_in_the_state_value_and_old_values_read_without_one(tmp_path):
    table, *_ = await decided_once(tmp_path)
    stored = orjson.loads(table[KEY])
    assert stored["signals_by_domain"] == {"lifecycle": 1, "context": 1}
    (decision_id, record), = stored["outbox"]
    assert decode(TipDecided, record.encode()).decision_id == decision_id
    del stored["outbox"]
    state, outbox = load_entry(orjson.dumps(stored))
    assert state is not None and state.user_id == USER and outbox == []
