"""Send messages that failed validation to oo.deadletter, with the reason, and count them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import faust

from agents.counters import Counters
from topics.catalog import DEADLETTER
from topics.codec import encode
from topics.validation import dead_letter

log = logging.getLogger(__name__)


class DeadLetterSink:
    """Where an agent puts a message it cannot use; the agent then keeps consuming."""

    def __init__(self, app: faust.App, counters: Counters) -> None:
        self._topic = app.topic(
            DEADLETTER.name, key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw",
        )
        self._counters = counters

    async def put(self, message: faust.types.Message, reason: str) -> None:
        """Dead-letter `message`; sent with the current event, so before its offset commits."""
        record = dead_letter(
            topic=message.topic, partition=message.partition, offset=message.offset,
            key=message.key, value=message.value, reason=reason, now=datetime.now(UTC),
        )
        await self._topic.send(key=message.key, value=encode(record))
        self._counters.inc("oo_dead_letters_total", "topic", message.topic)
        log.warning("dead-lettered %s[%s]@%s: %s", message.topic, message.partition,
                    message.offset, reason)
