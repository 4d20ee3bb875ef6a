"""The outbox relay on the real PostgreSQL and Kafka: nothing accepted is lost, order is kept."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from adapters import outbox
from adapters.outbox import OutboxRelay
from tests.helpers import consume_until, read_to_end
from topics.admin import ensure_topics
from topics.catalog import SIGNALS
from topics.codec import decode
from topics.records import ContextObserved

pytestmark = pytest.mark.integration
CONTEXT = SIGNALS["context"]


async def queue(database_url: str, user: str, n: int) -> list[str]:
    """Queue n context signals for `user` (one transaction each, as requests do)."""
    conn = await asyncpg.connect(database_url)
    ids = [f"{user}-{i:03d}" for i in range(n)]
    try:
        for event_id in ids:
            async with conn.transaction():
                await outbox.add(conn, CONTEXT, ContextObserved(
                    event_id=event_id, user_id=user, occurred_at=datetime.now(UTC),
                    source="test", kind="page_visible"))
    finally:
        await conn.close()
    return ids


async def waiting(database_url: str, user: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE key = $1", user)
    finally:
        await conn.close()


async def run_for(relay: OutboxRelay, seconds: float) -> None:
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(seconds)
    relay.stop()
    await asyncio.wait_for(task, 20)


@pytest.fixture
async def topics(kafka, settings):
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)


async def test_rows_wait_while_the_broker_is_down_then_go_out_in_order(kafka, postgres, topics):
    user = str(uuid.uuid4())
    ids = await queue(postgres, user, 60)
    down = OutboxRelay(postgres, "127.0.0.1:1", poll_interval=0.2)  # nothing listens there
    await run_for(down, 3)
    assert down.published == 0 and await waiting(postgres, user) == 60

    relay = OutboxRelay(postgres, kafka, poll_interval=0.2)
    task = asyncio.create_task(relay.run())
    try:
        records = await consume_until(kafka, CONTEXT.name, lambda kept: len(kept) >= 60,
                                      keep=lambda r: r.key == user.encode(), timeout=60)
        assert [decode(ContextObserved, r.value).event_id for r in records] == ids
        deadline = asyncio.get_running_loop().time() + 10
        while await waiting(postgres, user):
            assert asyncio.get_running_loop().time() < deadline, "published rows were not removed"
            await asyncio.sleep(0.2)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 20)


async def test_two_relays_at_once_publish_each_row_once(kafka, postgres, topics):
    user = str(uuid.uuid4())
    ids = await queue(postgres, user, 200)
    relays = [OutboxRelay(postgres, kafka, poll_interval=0.2) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        await consume_until(kafka, CONTEXT.name, lambda kept: len(kept) >= 200,
                            keep=lambda r: r.key == user.encode(), timeout=60)
        await asyncio.sleep(1.0)  # time for a wrong second copy to land
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    records = await read_to_end(kafka, CONTEXT.name, keep=lambda r: r.key == user.encode())
    assert [decode(ContextObserved, r.value).event_id for r in records] == ids
    assert sorted(r.published for r in relays)[0] == 0  # one held the lock, the other waited
