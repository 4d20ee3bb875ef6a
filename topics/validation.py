"""Turn untrusted message bytes into a record, or into a dead letter with a reason."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from topics.catalog import DEADLETTER, TopicSpec
from topics.codec import InvalidRecord, decode, format_time
from topics.records import DeadLettered, Event

# Every time in a record must lie in these years. Python's datetime ends at year 9999,
# and the engine computes days ahead of an event's time (timers, the next local
# morning): a signal at 9999-12-31 raised OverflowError inside the engine instead of
# being refused. The bounds are far from both ends and from any real event.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
# What an outside sender may claim as a signal's occurred_at (POST /api/signals): a
# tracker's clock may run a little ahead, and a backfill may go a year back.
AHEAD = timedelta(days=1)
BACK = timedelta(days=365)


class TimeOutOfRange(InvalidRecord):
    """A time a record carries is outside EARLIEST..LATEST, or too far from now for ingest."""


def decode_event(spec: TopicSpec, key: bytes | None, value: bytes | None) -> Event:
    """Validate one user-keyed message of `spec`'s topic.

    Besides the record itself, the message key must equal the record's
    user_id: a mis-keyed event would land on another user's partition and
    break co-partitioned state. And every time it carries must lie within
    EARLIEST..LATEST (check_times), so the engine's clock arithmetic never
    overflows on it: such a message is dead-lettered with the reason.
    """
    record = decode(spec.record, value)
    expected = record.user_id.encode()
    if key != expected:
        shown = "no key" if key is None else f"key {key[:64]!r}"
        raise InvalidRecord(f"message has {shown}; user topics are keyed by user_id")
    check_times(record)
    return record


def check_times(record: Any, path: str = "") -> None:
    """Raise TimeOutOfRange if any time in `record` (nested records and lists too) is
    outside EARLIEST..LATEST; the reason names the field."""
    for f in dataclasses.fields(record):
        where = f"{path}.{f.name}" if path else f.name
        value = getattr(record, f.name)
        items = enumerate(value) if isinstance(value, list) else ((None, value),)
        for index, item in items:
            at = where if index is None else f"{where}[{index}]"
            if isinstance(item, datetime):
                if not EARLIEST <= item < LATEST:
                    raise TimeOutOfRange(
                        f"{at}: {format_time(item)} is outside the years "
                        f"{EARLIEST.year}..{LATEST.year - 1}")
            elif dataclasses.is_dataclass(item) and not isinstance(item, type):
                check_times(item, at)


def check_recent(occurred_at: datetime, now: datetime, *, path: str = "occurred_at",
                 ahead: timedelta = AHEAD, back: timedelta = BACK) -> None:
    """Raise TimeOutOfRange unless `occurred_at` is at most `ahead` after and `back` before `now`.

    For times an outside sender claims (ingest); records on the topics may be
    simulated or replayed far from the wall clock and are held only to check_times.
    """
    if occurred_at > now + ahead:
        raise TimeOutOfRange(f"{path}: {format_time(occurred_at)} is more than "
                             f"{_span(ahead)} ahead of the server's clock")
    if occurred_at < now - back:
        raise TimeOutOfRange(f"{path}: {format_time(occurred_at)} is more than "
                             f"{_span(back)} in the past")


def _span(delta: timedelta) -> str:
    days = delta.days
    return f"{days} day{'s' if days != 1 else ''}" if days else f"{delta.seconds} s"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
RAW_KEPT = 40_000  # bytes of a refused message kept in its dead letter (base64: 53,336 chars)


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    now: datetime,
) -> DeadLettered:
    """The dead-letter record for a message that failed validation at topic/partition/offset."""
    ident = hashlib.sha256(f"{topic}/{partition}/{offset}".encode()).hexdigest()[:32]
    user_id = None
    if key is not None:
        try:
            text = key.decode("utf-8")
            if 0 < len(text) <= 128 and not _CONTROL.search(text):
                user_id = text
        except UnicodeDecodeError:
            pass
    raw = value or b""
    # A reason can quote the message (an unknown field's name): keep it printable and valid.
    reason = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", reason)
    if len(raw) > RAW_KEPT:
        # The whole dead letter must itself be a valid record (at most 64 KiB).
        reason = f"{reason[:900]} (raw truncated to the first {RAW_KEPT} of {len(raw)} bytes)"
    return DeadLettered(
        event_id=f"dl-{ident}",
        user_id=user_id,
        occurred_at=now,
        source="oo.validation",
        topic=topic,
        partition=partition,
        offset=offset,
        key=None if key is None else base64.b64encode(key[:768]).decode(),
        reason=reason[:1000],
        raw=base64.b64encode(raw[:RAW_KEPT]).decode(),
    )


__all__ = ["DEADLETTER", "InvalidRecord", "TimeOutOfRange", "check_recent", "check_times",
           "dead_letter", "decode_event"]
