"""The features agent: fold every signal topic into the per-user `features` table."""

from __future__ import annotations

from typing import Any

import faust

from agents.counters import Counters
from agents.deadletters import DeadLetterSink
from domain.features import UserFeatures, fold
from oo.settings import Settings
from topics.catalog import SIGNALS
from topics.codec import InvalidRecord
from topics.validation import decode_event

TABLE_NAME = "features"
DOMAIN_BY_TOPIC = {spec.name: domain for domain, spec in SIGNALS.items()}


def register(app: faust.App, settings: Settings, dead: DeadLetterSink, counters: Counters) -> None:
    """Declare the signal topics, the features table and the agent on `app`."""
    signals = app.topic(
        *(spec.name for spec in SIGNALS.values()),
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.topic_partitions,
    )
    table = app.Table(
        TABLE_NAME, default=None, partitions=settings.topic_partitions,
        key_type=str, key_serializer="raw", value_serializer="json",
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
            stored = table.get(record.user_id)
            state = UserFeatures.from_dict(stored) if stored else None
            new_state, changed = fold(state, record, domain)
            if changed:
                table[record.user_id] = new_state.to_dict()
                counters.inc("oo_signals_folded_total", "domain", domain)
            else:
                counters.inc("oo_signals_duplicate_total", "domain", domain)
