"""A signal through the real Kafka broker and a row through the real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from oo.migrate import migrate
from tests.helpers import consume_until, produce
from topics.admin import TopicLayoutError, ensure_topics
from topics.catalog import SIGNALS, TopicSpec
from topics.codec import decode, encode
from topics.records import TaskChanged

pytestmark = pytest.mark.integration


async def test_a_signal_round_trips_through_the_broker(kafka, settings):
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    user = f"u-{uuid.uuid4().hex[:10]}"
    sent = TaskChanged(event_id=uuid.uuid4().hex, user_id=user, occurred_at=datetime.now(UTC),
                       source="test", change="created", task_id="t1", title="Water the plants",
                       due_at=datetime(2026, 12, 1, 18, tzinfo=UTC), priority=3)
    await produce(kafka, SIGNALS["tasks"].name, [(user.encode(), encode(sent))])
    received = await consume_until(kafka, SIGNALS["tasks"].name, lambda kept: bool(kept),
                                   keep=lambda r: r.key == user.encode())
    assert decode(TaskChanged, received[0].value) == sent


async def test_topics_are_created_once_and_a_partition_mismatch_is_refused(kafka):
    spec = TopicSpec(f"oo.test.{uuid.uuid4().hex[:8]}", TaskChanged, "scratch")
    quiet = dict(replication=1, specs=[spec], log=lambda _: None)
    assert await ensure_topics(kafka, partitions=3, **quiet) == [spec.name]
    assert await ensure_topics(kafka, partitions=3, **quiet) == []
    with pytest.raises(TopicLayoutError, match="has 3"):
        await ensure_topics(kafka, partitions=5, **quiet)


async def test_a_tip_instance_row_round_trips_through_postgres(postgres):
    conn = await asyncpg.connect(postgres)
    try:
        user_id = await conn.fetchval("INSERT INTO users (time_zone) VALUES ('Europe/Paris') RETURNING id")
        snapshot = {"open_todos": 2, "mood": -1}
        decision = f"d-{uuid.uuid4().hex}"
        await conn.execute(
            """INSERT INTO tip_instances (decision_id, user_id, tip_id, kind, title, body, source,
                   moment, policy, propensity, context_snapshot, decided_at, status)
               VALUES ($1, $2, 'a1', 'advice', 'Stretch', '', 'catalogue', 'app_opened', 'random',
                       0.25, $3::jsonb, now(), 'pending')""",
            decision, user_id, json.dumps(snapshot),
        )
        row = await conn.fetchrow("SELECT * FROM tip_instances WHERE decision_id = $1", decision)
        assert row["user_id"] == user_id and json.loads(row["context_snapshot"]) == snapshot
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO tip_instances (decision_id, user_id, tip_id, kind, title, source, moment,
                       policy, propensity, context_snapshot, decided_at, status)
                   VALUES ($1, $2, 'a1', 'advice', 'x', 's', 'm', 'p', 1, '{}', now(), 'pending')""",
                decision, user_id,
            )
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)
        assert await conn.fetchval("SELECT count(*) FROM tip_instances WHERE user_id = $1", user_id) == 0
    finally:
        await conn.close()


async def test_migrations_rerun_applies_nothing(postgres):
    assert await migrate(postgres, log=lambda _: None) == []
