"""Read whole topics from the beginning to their current end: the event log for offline tools.

`oo replay` and `oo metrics` read decisions, feedback and signals this way. Records
that fail validation are skipped (the engine dead-letters them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from topics.catalog import TopicSpec


async def read_records(bootstrap_servers: str, specs: Sequence[TopicSpec], *,
                       timeout_s: float) -> list[tuple[str, Any]]:
    """(topic name, record) for every valid record of `specs`, in each partition's order."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from topics.codec import InvalidRecord, decode

    by_name = {spec.name: spec for spec in specs}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    records: list[tuple[str, Any]] = []
    try:
        # The consumer's own metadata only covers subscribed topics: fetch the cluster's.
        cluster = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(name, p) for name in by_name
                 for p in (cluster.partitions_for_topic(name) or ())]
        if not parts:
            return records
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        remaining = {tp for tp, end in ends.items() if end > 0}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while remaining and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, messages in batch.items():
                for message in messages:
                    try:
                        records.append((tp.topic, decode(by_name[tp.topic].record,
                                                         message.value)))
                    except InvalidRecord:
                        continue
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records
