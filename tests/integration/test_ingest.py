"""Signal ingest for trackers on the real PostgreSQL and Kafka: tokens, batches, replays, limits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import consume_until, read_to_end
from topics.catalog import SIGNALS
from topics.codec import decode
from topics.records import HabitLogged, MoodLogged
from web.app import INGEST_BURST
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration


@pytest.fixture
async def person(pool):
    user_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(pool, user_id)
    yield user_id, {"Cookie": f"{COOKIE}={session.token}", "X-CSRF-Token": session.csrf_token}
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)


async def new_token(client, headers, domains=("habits", "mood"), name="my habit app") -> dict:
    response = await client.post("/api/ingest-tokens", json={"name": name, "domains": list(domains)},
                                 headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


def habit(event_id: str, minutes_ago: int = 5, **fields) -> dict:
    at = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()
    return {"domain": "habits", "event_id": event_id, "occurred_at": at, "change": "done",
            "habit_id": "run", **fields}


async def post(client, token: str, signals) -> tuple[int, dict]:
    response = await client.post("/api/signals", json={"signals": signals},
                                 headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def test_a_valid_batch_lands_on_the_right_topics_in_order_and_a_replay_is_a_no_op(
        client, person, kafka):
    user, headers = person
    token = (await new_token(client, headers))["token"]
    prefix = uuid.uuid4().hex[:8]
    batch = [habit(f"{prefix}-h1", 30), habit(f"{prefix}-h2", 20, change="skipped"),
             {"domain": "mood", "event_id": f"{prefix}-m1",
              "occurred_at": datetime.now(UTC).isoformat(), "score": -1, "source": "moodapp"},
             habit(f"{prefix}-h3", 10)]
    assert await post(client, token, batch) == (202, {"accepted": 4, "duplicates": 0})
    assert await post(client, token, batch) == (202, {"accepted": 0, "duplicates": 4})

    key = str(user).encode()
    habits = await consume_until(kafka, SIGNALS["habits"].name, lambda kept: len(kept) >= 3,
                                 keep=lambda r: r.key == key, timeout=30)
    records = [decode(HabitLogged, r.value) for r in habits]
    assert [r.event_id for r in records] == [f"{prefix}-h1", f"{prefix}-h2", f"{prefix}-h3"]
    assert {r.user_id for r in records} == {str(user)} and records[0].source == "ingest"
    (mood,) = await consume_until(kafka, SIGNALS["mood"].name, lambda kept: len(kept) >= 1,
                                  keep=lambda r: r.key == key, timeout=30)
    assert decode(MoodLogged, mood.value).source == "moodapp"
    await asyncio.sleep(1.0)  # the replay must not have been published
    again = await read_to_end(kafka, SIGNALS["habits"].name, keep=lambda r: r.key == key)
    assert len(again) == 3


@pytest.mark.parametrize(("bad", "words"), [
    ({"habit_id": ""}, "signals[1].habit_id"),
    ({"change": "maybe"}, "signals[1].change"),
    ({"streak": 3}, "signals[1].streak: unknown field"),
    ({"user_id": "someone-else"}, "signals[1].user_id: set by the token"),
    ({"domain": "lifecycle"}, "signals[1].domain"),
    ({"occurred_at": "yesterday"}, "signals[1].occurred_at"),
])
async def test_a_bad_field_is_a_400_naming_it_and_nothing_of_the_batch_is_applied(
        client, person, pool, bad, words):
    user, headers = person
    token = (await new_token(client, headers))["token"]
    prefix = uuid.uuid4().hex[:8]
    status, body = await post(client, token, [habit(f"{prefix}-ok"), habit(f"{prefix}-bad", **bad)])
    assert status == 400 and words in body["error"], body
    assert await pool.fetchval("SELECT count(*) FROM ingested_events WHERE user_id=$1", user) == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE key=$1", str(user)) == 0


async def test_a_token_is_scoped_listed_revoked_and_then_refused(client, person):
    _, headers = person
    created = await new_token(client, headers, domains=["mood"], name="mood only")
    token = created["token"]
    assert token.startswith("oo_it_")
    status, body = await post(client, token, [habit(uuid.uuid4().hex)])
    assert status == 403 and "may not send habits" in body["error"]
    listed = await (await client.get("/api/ingest-tokens", headers=headers)).json()
    assert [(t["name"], t["domains"], t["revoked"]) for t in listed["tokens"]] == [
        ("mood only", ["mood"], False)]
    assert "token" not in listed["tokens"][0]  # shown once, at creation
    revoked = await client.delete(f"/api/ingest-tokens/{created['id']}", headers=headers)
    assert revoked.status == 204
    status, body = await post(client, token, [])
    assert status == 401 and "revoked" in body["error"]
    for auth in ("", "Bearer", "Basic abc", "Bearer oo_it_nope"):
        response = await client.post("/api/signals", json={"signals": []},
                                     headers={"Authorization": auth} if auth else {})
        assert response.status == 401


async def test_someone_elses_token_cannot_be_revoked(client, person, pool):
    _, headers = person
    other = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    try:
        session = await open_session(pool, other)
        theirs = await new_token(client, {"Cookie": f"{COOKIE}={session.token}",
                                          "X-CSRF-Token": session.csrf_token})
        response = await client.delete(f"/api/ingest-tokens/{theirs['id']}", headers=headers)
        assert response.status == 404
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", other)


async def test_a_burst_gets_429_with_retry_after_and_other_tokens_are_unaffected(client, person):
    _, headers = person
    busy = (await new_token(client, headers))["token"]
    calm = (await new_token(client, headers))["token"]
    statuses = []
    for _ in range(INGEST_BURST + 5):
        response = await client.post("/api/signals", json={"signals": [habit(uuid.uuid4().hex)]},
                                     headers={"Authorization": f"Bearer {busy}"})
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
    assert statuses.count(202) >= INGEST_BURST and 429 in statuses
    assert (await post(client, calm, [habit(uuid.uuid4().hex)]))[0] == 202
