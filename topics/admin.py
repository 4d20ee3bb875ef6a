"""Create oO's topics with explicit partition counts, and check existing ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
