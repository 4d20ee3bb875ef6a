"""The engine's outbox: a decision its state records is never lost to a crash
(docs/adr/0010-decisions-before-state.md).

The engine runs on in-memory tables and topics (tests/engine_harness.py) whose
sends the test acknowledges (or not) by hand: the crash is a new Engine on the
same table contents, as after a restore.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from agents.state import load_entry
from tests.engine_harness import Table, Tables, engine as new_engine, settle, signal
from topics.codec import decode
from topics.records import ContextObserved, LifecycleChanged, TipDecided

pytestmark = pytest.mark.unit
USER = "0b7d6a52-3f7e-4d55-9a51-8d1c0e2f4a10"
KEY = USER.encode()
AT = datetime(2027, 6, 2, 10, 0, tzinfo=UTC)  # a Wednesday morning, in the future


def engine(tmp_path, table: Table):
    return new_engine(tmp_path, Tables(features=table))


def account():
    return signal("lifecycle", LifecycleChanged(
        event_id=f"{USER}-created", user_id=USER, occurred_at=AT, source="test",
        change="user_created", time_zone="UTC", quiet_start_minute=22 * 60,
        quiet_end_minute=7 * 60, daily_budget=5))


def opened(n: int):
    return signal("context", ContextObserved(
        event_id=f"{USER}-open-{n}", user_id=USER, occurred_at=AT.replace(hour=10 + 2 * n),
        source="test", kind="app_opened"))


def outbox_of(table: Table) -> list[str]:
    return [entry.decision_id for entry in load_entry(table[KEY]).outbox]


async def decided_once(tmp_path):
    """An engine that made one decision (an app opening) whose send is not answered yet:
    (its table, the engine, the decision's record, the unanswered send)."""
    table = Table()
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
    state, outbox, _ = load_entry(orjson.dumps(stored))
    assert state is not None and state.user_id == USER and outbox == []


async def test_a_refused_send_is_retried_without_waiting_for_the_persons_next_event(tmp_path):
    # Faust commits the trigger's offset once the send has finished, failed or not: the
    # person may never have another event to carry the outbox entry out.
    _, worker, value, answer = await decided_once(tmp_path)
    answer.set_exception(RuntimeError("broker said no"))
    await settle()
    await worker.resend_failed()
    (_, again, second), = worker.decided.sent[1:]
    assert again == value, "the same decision, byte for byte"
    second.set_result(None)
    await settle()
    await worker.resend_failed()
    assert len(worker.decided.sent) == 2, "an accepted re-send is not sent again"
