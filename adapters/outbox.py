"""The transactional outbox: events the web accepts are never lost.

A request that changes state writes its event into `outbox` in the same
transaction as the change (`add`), so either both happen or neither. The
relay publishes unpublished rows to Kafka in id order and deletes them once
the broker has acknowledged them (acks=all, idempotent producer). If the
broker is down, rows wait and the relay retries with backoff; nothing the web
answered 2xx for is dropped.

Delivery is at least once: a relay that dies between the broker's ack and the
delete publishes those rows again. Every record carries its `event_id`, and
consumers (the engine) drop repeats. Only one relay publishes at a time (a
PostgreSQL advisory lock), so rows keep their order even with many web
processes.
"""

from __future__ import annotations

import asyncio
import logging
import random

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from adapters.db import UNAVAILABLE
from topics.catalog import TopicSpec
from topics.codec import encode
from topics import trace
from topics.records import Event

log = logging.getLogger(__name__)
CHANNEL = "oo_outbox"
LOCK_ID = 0x6F6F_0001  # pg advisory lock held by the one publishing relay
BATCH = 500
RETRY_CAP_S = 10.0
STOP_TIMEOUT_S = 5.0  # closing the producer on shutdown (see OutboxRelay._stop_producer)


async def add(conn: asyncpg.Connection, topic: TopicSpec, record: Event,
              headers: dict[str, str] | None = None) -> None:
    """Queue `record` for `topic` (keyed by its user id) inside the caller's transaction.

    Without `headers`, the event carries the current request's `traceparent`.
    """
    if not isinstance(record, topic.record):
        raise TypeError(f"{topic.name} carries {topic.record.__name__}, not {type(record).__name__}")
    if headers is None:
        traceparent = trace.current.get()
        headers = {"traceparent": traceparent} if traceparent else {}
    await conn.execute(
        "INSERT INTO outbox (topic, key, payload, headers) VALUES ($1, $2, $3::jsonb, $4::jsonb)",
        topic.name, record.user_id, encode(record).decode(), orjson.dumps(headers or {}).decode())
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


class OutboxRelay:
    """Publishes the outbox to Kafka, in order, until stopped."""

    def __init__(self, database_url: str, bootstrap_servers: str, *,
                 poll_interval: float = 1.0) -> None:
        self.database_url = database_url
        self.bootstrap_servers = bootstrap_servers
        self.poll_interval = poll_interval
        self.published = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        """Finish the batch in hand, close cleanly, and return from `run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Hold the relay lock and publish; on any failure wait (backoff) and start again."""
        delay = 0.2
        while not self._stopping:
            try:
                await self._lead()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, asyncpg.PostgresError, KafkaError) as err:
                log.warning("outbox relay: %s (%s); retrying in up to %.1fs",
                            type(err).__name__, err, delay)
                if not self._stopping:
                    await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, RETRY_CAP_S)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(self.database_url, timeout=10)
        producer = None
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_ID):
                if self._stopping:
                    return
                await asyncio.sleep(self.poll_interval * 5)  # another relay publishes
            await conn.add_listener(CHANNEL, self._notified)
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all",
                                        enable_idempotence=True, linger_ms=2,
                                        request_timeout_ms=15_000)
            await producer.start()
            while not self._stopping:
                self._wake.clear()
                if await self._publish_batch(conn, producer) < BATCH and not self._stopping:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                    except TimeoutError:
                        pass
        finally:
            if producer is not None:
                await self._stop_producer(producer)
            await conn.close(timeout=5)  # closing releases the advisory lock

    async def _stop_producer(self, producer: AIOKafkaProducer) -> None:
        """Close the producer; on shutdown, give up after STOP_TIMEOUT_S.

        An idempotent aiokafka producer never expires a batch, so while the broker
        is down `stop()` waits for it forever (aio-libs/aiokafka#1101). Between
        retries that is right: the batch goes out when the broker is back. On
        shutdown (the web cancels the relay after its own 15 s) it would hang the
        process; the unsent rows are still in the outbox for the next relay.
        """
        if not self._stopping:
            await producer.stop()
            return
        try:
            await asyncio.wait_for(producer.stop(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("outbox relay: the producer did not close in %.0f s (broker down?); "
                        "its unsent rows stay in the outbox", STOP_TIMEOUT_S)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer) -> int:
        rows = await conn.fetch(
            "SELECT id, topic, key, payload::text AS payload, headers::text AS headers "
            "FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1", BATCH)
        if not rows:
            return 0
        sends = []
        for row in rows:
            headers = [(k, str(v).encode()) for k, v in orjson.loads(row["headers"]).items()]
            sends.append(await producer.send(
                row["topic"], value=row["payload"].encode(),
                key=row["key"].encode() if row["key"] is not None else None, headers=headers))
        await asyncio.gather(*sends)  # raises if any send failed: the rows stay
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.published += len(rows)
        return len(rows)
