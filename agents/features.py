"""The features agent: fold every signal topic into the per-user `features` table."""

from __future__ import annotations

import json
import logging
from typing import Any

import faust

from agents.counters import Counters
from agents.deadletters import DeadLetterSink
from domain.features import UserFeatures, fold
from oo.settings import Settings
from topics.catalog import SIGNALS
from topics.codec import InvalidRecord
from topics.validation import decode_event

log = logging.getLogger(__name__)
TABLE_NAME = "features"
DOMAIN_BY_TOPIC = {spec.name: domain for domain, spec in SIGNALS.items()}


def register(app: faust.App, settings: Settings, dead: DeadLetterSink, counters: Counters) -> None:
    """Declare the signal topics, the features table and the agent on `app`."""
    signals = app.topic(
        *(spec.name for spec in SIGNALS.values()),
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    # Raw bytes both ways: keys are the user_id as sent on the topic, values
    # our own compact JSON (the fold's `to_dict`), so nothing Faust-specific
    # ends up in the changelog.
    table = app.Table(
        TABLE_NAME, default=None, partitions=settings.topic_partitions,
        key_type=bytes, value_type=bytes,
    )

    @app.agent(signals, name="oo.agents.features")
    async def fold_signals(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            domain = DOMAIN_BY_TOPIC[message.topic]
            try:
                record = decode_event(SIGNALS[domain], message.key, message.value)
            except InvalidRecord as err:
                await dead.put(message, err.reason)
                continue
            try:
                changed = _fold_into(table, message.key, record, domain)
            except Exception as err:  # a bug must not kill the agent nor lose the event
                log.exception("features fold failed for %s", record.event_id)
                counters.inc("oo_agent_errors_total", "agent", "features")
                await dead.put(message, f"processing failed: {type(err).__name__}: {err}")
                continue
            counters.inc(
                "oo_signals_folded_total" if changed else "oo_signals_duplicate_total",
                "domain", domain,
            )


def _fold_into(table: Any, key: bytes, record: Any, domain: str) -> bool:
    """Read the user's features, fold the signal, write them back if changed."""
    stored = table.get(key)
    state = UserFeatures.from_dict(json.loads(stored)) if stored else None
    new_state, changed = fold(state, record, domain)
    if changed:
        table[key] = json.dumps(new_state.to_dict(), separators=(",", ":")).encode()
    return changed
