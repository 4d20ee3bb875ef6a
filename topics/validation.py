"""Turn untrusted message bytes into a record, or into a dead letter with a reason."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime

from topics.catalog import DEADLETTER, TopicSpec
from topics.codec import InvalidRecord, decode
from topics.records import DeadLettered, Event


def decode_event(spec: TopicSpec, key: bytes | None, value: bytes | None) -> Event:
    """Validate one user-keyed message of `spec`'s topic.

    Besides the record itself, the message key must equal the record's
    user_id: a mis-keyed event would land on another user's partition and
    break co-partitioned state.
    """
    record = decode(spec.record, value)
    expected = record.user_id.encode()
    if key != expected:
        shown = "no key" if key is None else f"key {key[:64]!r}"
        raise InvalidRecord(f"message has {shown}; user topics are keyed by user_id")
    return record


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


__all__ = ["DEADLETTER", "InvalidRecord", "dead_letter", "decode_event"]
