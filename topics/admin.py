"""Create oO's topics with explicit partition counts, and check existing ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from topics.catalog import ALL_TOPICS, TopicSpec


class TopicLayoutError(RuntimeError):
    """An existing topic does not have the partition count oO needs."""


async def ensure_topics(
    bootstrap_servers: str,
    *,
    partitions: int,
    replication: int,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Create every missing topic; return the names created.

    An existing topic with another partition count raises TopicLayoutError:
    co-partitioning by user_id depends on every user topic having the same
    count, and silently living with a mismatch would split a user's state.
    """
    wanted = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="oo-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if missing:
            log(f"creating {len(missing)} topics with {partitions} partitions each")
            try:
                await admin.create_topics(
                    [
                        NewTopic(s.name, partitions, replication, topic_configs=s.configs)
                        for s in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # another process created them between our list and create
        present = [s.name for s in wanted if s.name in existing]
        if present:
            await _check_partitions(admin, present, partitions)
        return [s.name for s in missing]
    finally:
        await admin.close()


@dataclass(frozen=True)
class InternalTopic:
    """A topic the Faust worker would otherwise declare itself (a table changelog, the leader topic)."""

    name: str
    partitions: int
    replication: int
    configs: Mapping[str, str] = field(default_factory=dict)


async def ensure_internal_topics(
    bootstrap_servers: str,
    wanted: Iterable[InternalTopic],
    *,
    timeout: float = 30.0,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Create the worker's internal topics and wait until the broker's metadata lists them.

    Faust declares its changelog topics itself, on the consumer's own client, a
    moment before that consumer subscribes, and never refreshes its metadata
    afterwards (only every `consumer_metadata_max_age_ms`, 5 minutes). When the
    broker has not yet published a just-created topic, the group leader's
    metadata keeps it with 0 partitions: its assignor ignores the changelog (no
    worker restores that table), and every write to the table from that worker
    raises PartitionsMismatch ("... changelog topic has 0 partitions"), which
    the engine dead-letters. Creating them here, and waiting until they are
    visible with all their partitions led, closes that window
    (docs/reliability.md).
    """
    topics = list(wanted)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="oo-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(t.name, t.partitions, t.replication, topic_configs=dict(t.configs))
                    for t in missing
                ])
            except TopicAlreadyExistsError:
                pass  # another worker of the app created them between our list and create
        await _wait_visible(admin, {t.name: t.partitions for t in topics}, timeout)
        if missing:
            log(f"internal topics: {len(missing)} created ({', '.join(t.name for t in missing)})")
        return [t.name for t in missing]
    finally:
        await admin.close()


async def _wait_visible(admin: AIOKafkaAdminClient, partitions: Mapping[str, int],
                        timeout: float) -> None:
    """Until every topic is described with its partition count, each partition with a leader."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            described = {t["topic"]: t for t in await admin.describe_topics(list(partitions))}
        except KafkaError:
            described = {}
        pending = [
            name for name, count in partitions.items()
            if (t := described.get(name)) is None or t.get("error_code")
            or len(t.get("partitions") or ()) != count
            or any(p.get("leader", -1) < 0 for p in t["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicLayoutError(f"topics not visible in the broker's metadata after "
                                   f"{timeout:.0f} s: {', '.join(pending)}")
        await asyncio.sleep(0.1)


async def _check_partitions(admin: AIOKafkaAdminClient, names: list[str], partitions: int) -> None:
    try:
        described = await admin.describe_topics(names)
    except KafkaError as err:
        raise TopicLayoutError(f"could not describe topics: {err}") from err
    wrong = [
        f"{t['topic']} has {len(t['partitions'])}"
        for t in described
        if len(t.get("partitions") or ()) != partitions
    ]
    if wrong:
        raise TopicLayoutError(
            f"topics exist with another partition count than OO_TOPIC_PARTITIONS={partitions}: "
            + "; ".join(wrong)
            + " (see docs/adr/0003-one-partition-count.md)"
        )
