"""The tip and delivery store against the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from adapters.tips import TipStore
from topics.records import Tip, TipDecided

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 22, 9, tzinfo=UTC)


def decided(user_id: str, decision_id: str, at: datetime = T0) -> TipDecided:
    return TipDecided(
        event_id=decision_id, user_id=user_id, occurred_at=at, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.5, reason="app_opened: test",
        tip=Tip(id="advice:water", kind="advice", title="Drink water", source="catalogue"),
        context_snapshot={"moment": "app_opened"}, expires_at=at + timedelta(hours=4))


@pytest.fixture
async def db(postgres):
    pool = await asyncpg.create_pool(postgres, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def person(db):
    user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    subs = [await db.fetchval(
        """INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)
           VALUES ($1, $2, 'key', 'auth') RETURNING id""",
        user_id, f"https://push.example/{uuid.uuid4()}") for _ in range(2)]
    yield str(user_id), subs
    await db.execute("DELETE FROM users WHERE id = $1", user_id)


async def test_a_decision_is_recorded_once_with_a_pending_push_per_device(db, person):
    user, subs = person
    store = TipStore(db)
    first = await store.record_decision(decided(user, "d1"))
    assert first.known_user and first.new
    assert sorted(p.subscription_id for p in first.pending) == sorted(subs)

    again = await store.record_decision(decided(user, "d1"))  # redelivered decision
    assert not again.new and len(again.pending) == 2          # nothing marked yet: still owed

    await store.mark("d1", subs[0], "sent", 1)
    await store.mark("d1", subs[1], "gone", 1)
    third = await store.record_decision(decided(user, "d1"))
    assert third.pending == ()                                # never sent twice
    assert await db.fetchval("SELECT status FROM tip_instances WHERE decision_id = 'd1'") == "delivered"
    assert await db.fetchval("SELECT count(*) FROM tip_instances WHERE decision_id = 'd1'") == 1


async def test_a_newer_tip_withdraws_the_open_older_one(db, person):
    user, _ = person
    store = TipStore(db)
    await store.record_decision(decided(user, "old"))
    newer = await store.record_decision(decided(user, "new", T0 + timedelta(hours=2)))
    assert newer.withdrawn == ("old",)
    assert await db.fetchval("SELECT status FROM tip_instances WHERE decision_id = 'old'") == "withdrawn"


async def test_decisions_for_people_without_an_account_are_not_stored(db):
    store = TipStore(db)
    for user in (str(uuid.uuid4()), "not-a-uuid"):
        recorded = await store.record_decision(decided(user, f"x-{uuid.uuid4().hex}"))
        assert not recorded.known_user and recorded.pending == ()


async def test_a_gone_subscription_is_removed(db, person):
    user, subs = person
    await TipStore(db).remove_subscription(subs[0])
    assert await db.fetchval("SELECT count(*) FROM push_subscriptions WHERE user_id = $1::uuid", user) == 1
