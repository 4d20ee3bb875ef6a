"""Times far from now: refused by ingest, dead-lettered with a reason by the engine.

A habit logged at 9999-12-31 used to pass validation and then raise
OverflowError in domain/clock.py (the next local morning is past year 9999),
caught only by the engine's last-resort handler as a "processing failed".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from tests.unit.test_engine_outbox import KEY, USER, account, engine
from topics.catalog import SIGNALS, TIMERS, TIPS_DECIDED
from topics.codec import InvalidRecord, encode
from topics.examples import examples
from topics.records import TipDecided
from topics.validation import TimeOutOfRange, check_recent, check_times, decode_event

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def habit_at(raw_time: str) -> bytes:
    return (b'{"event_id":"h-far","user_id":"%s","occurred_at":"%s","source":"test",'
            b'"change":"done","habit_id":"run","usual_minute":420}'
            % (USER.encode(), raw_time.encode()))


@pytest.mark.parametrize("when", ["9999-12-31T23:59:00Z", "3000-01-01T00:00:00Z",
                                  "1969-12-31T23:59:59Z", "0001-01-01T12:00:00Z"])
def test_a_record_with_a_time_outside_the_computable_years_is_refused_with_the_field(when):
    with pytest.raises(TimeOutOfRange) as caught:
        decode_event(SIGNALS["habits"], KEY, habit_at(when))
    assert caught.value.reason.startswith("occurred_at: ")
    assert "outside the years 1970..2999" in caught.value.reason
    assert isinstance(caught.value, InvalidRecord)  # what every agent dead-letters


@pytest.mark.parametrize("when", ["1970-01-01T00:00:00Z", "2999-12-31T23:59:59Z",
                                  "2026-12-01T07:00:00+01:00"])
def test_times_within_the_years_pass(when):
    assert decode_event(SIGNALS["habits"], KEY, habit_at(when)).habit_id == "run"


def test_every_time_of_a_record_is_checked_not_only_occurred_at():
    decided = next(r for cls, pairs in examples().items() if cls is TipDecided
                   for _, r in pairs)
    far = dataclasses.replace(decided, expires_at=datetime(9999, 1, 1, tzinfo=UTC))
    with pytest.raises(TimeOutOfRange, match=r"^expires_at: 9999-01-01T00:00:00Z"):
        decode_event(TIPS_DECIDED, far.user_id.encode(), encode(far))


@dataclass(frozen=True)
class Inner:
    at: datetime


@dataclass(frozen=True)
class Outer:
    inner: Inner
    many: list[Inner]


def test_times_in_nested_records_and_lists_are_checked_and_named():
    fine = Inner(NOW)
    check_times(Outer(fine, [fine, fine]))
    with pytest.raises(TimeOutOfRange, match=r"^inner\.at: "):
        check_times(Outer(Inner(datetime(1, 1, 1, tzinfo=UTC)), []))
    with pytest.raises(TimeOutOfRange, match=r"^many\[1\]\.at: "):
        check_times(Outer(fine, [fine, Inner(datetime(9000, 1, 1, tzinfo=UTC))]))


def test_recent_means_at_most_a_day_ahead_and_a_year_back():
    check_recent(NOW + timedelta(days=1), NOW)
    check_recent(NOW - timedelta(days=365), NOW)
    with pytest.raises(TimeOutOfRange, match="is more than 1 day ahead of the server's clock"):
        check_recent(NOW + timedelta(days=1, seconds=1), NOW)
    with pytest.raises(TimeOutOfRange, match="is more than 365 days in the past"):
        check_recent(NOW - timedelta(days=365, seconds=1), NOW, path="signals[0].occurred_at")


async def test_the_engine_dead_letters_a_far_future_signal_instead_of_failing(tmp_path):
    worker = engine(tmp_path, {})
    await worker.handle(account())
    message = SimpleNamespace(topic=SIGNALS["habits"].name, key=KEY, partition=0, offset=7,
                              value=habit_at("9999-12-31T23:59:00Z"), headers=[])
    await worker.handle(message)  # type: ignore[arg-type]
    letters = worker.dead.letters  # type: ignore[attr-defined]
    assert len(letters) == 1
    assert letters[0].startswith("occurred_at: 9999-12-31T23:59:00Z is outside the years")
    assert worker.counters.get("oo_agent_errors_total", "agent", "engine") == 0
    assert worker.counters.get("oo_signals_folded_total", "domain", "habits") == 0


async def test_the_engine_dead_letters_a_timer_command_with_a_time_no_clock_holds(tmp_path):
    worker = engine(tmp_path, {})
    await worker.handle(account())
    value = (b'{"event_id":"t-far","user_id":"%s","occurred_at":"2026-12-01T12:00:00Z",'
             b'"source":"test","action":"fire","timer_id":"morning_start:x",'
             b'"purpose":"morning_start","fire_at":"9999-12-31T23:59:00Z"}' % USER.encode())
    message = SimpleNamespace(topic=TIMERS.name, key=KEY, partition=0, offset=8, value=value,
                              headers=[])
    await worker.handle(message)  # type: ignore[arg-type]
    letters = worker.dead.letters  # type: ignore[attr-defined]
    assert len(letters) == 1 and letters[0].startswith("fire_at: 9999-12-31T23:59:00Z is outside")
    assert worker.counters.get("oo_agent_errors_total", "agent", "engine") == 0
