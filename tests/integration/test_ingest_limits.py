"""Ingest's guards: times far from now are a 422, tokens expire, refused tokens are rate-limited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_ingest import habit, new_token, post
from web.app import INGEST_REFUSED_BURST
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration


@pytest.fixture
async def person(pool):
    user_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(pool, user_id)
    yield user_id, {"Cookie": f"{COOKIE}={session.token}", "X-CSRF-Token": session.csrf_token}
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.mark.parametrize(("occurred_at", "words"), [
    (at(timedelta(days=1, minutes=5)), "more than 1 day ahead of the server's clock"),
    (at(-timedelta(days=366)), "more than 365 days in the past"),
    ("9999-12-31T23:59:00Z", "outside the years 1970..2999"),
    ("1900-01-01T00:00:00Z", "outside the years 1970..2999"),
])
async def test_a_time_far_from_now_is_a_422_naming_it_and_nothing_is_applied(
        client, person, pool, occurred_at, words):
    user, headers = person
    token = (await new_token(client, headers))["token"]
    prefix = uuid.uuid4().hex[:8]
    far = {**habit(f"{prefix}-far"), "occurred_at": occurred_at}
    status, body = await post(client, token, [habit(f"{prefix}-ok"), far])
    assert status == 422, body
    assert body["error"].startswith("signals[1].occurred_at: ") and words in body["error"]
    assert await pool.fetchval("SELECT count(*) FROM ingested_events WHERE user_id=$1", user) == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE key=$1", str(user)) == 0


async def test_a_due_date_next_year_is_fine_but_not_one_in_year_9999(client, person):
    _, headers = person
    token = (await new_token(client, headers, domains=["tasks"]))["token"]

    def task(due_at: str) -> dict:
        return {"domain": "tasks", "event_id": uuid.uuid4().hex, "occurred_at": at(timedelta()),
                "change": "created", "task_id": "t1", "title": "Renew the passport",
                "due_at": due_at}

    assert (await post(client, token, [task(at(timedelta(days=400)))]))[0] == 202
    status, body = await post(client, token, [task("9999-01-01T00:00:00Z")])
    assert status == 422 and body["error"].startswith("signals[0].due_at: "), body


async def test_a_token_with_an_expiry_is_listed_with_it_and_refused_once_it_passed(
        client, person, pool):
    _, headers = person
    expires = datetime.now(UTC) + timedelta(days=30)
    made = await client.post("/api/ingest-tokens", headers=headers, json={
        "name": "trial", "domains": ["habits"], "expires_at": expires.isoformat()})
    assert made.status == 201, await made.text()
    created = await made.json()
    assert datetime.fromisoformat(created["expires_at"]) == expires
    assert created["expired"] is False
    assert (await post(client, created["token"], [habit(uuid.uuid4().hex)]))[0] == 202

    # Time passes: the expiry is now behind us (the table requires it after created_at).
    await pool.execute("UPDATE ingest_tokens SET expires_at = created_at + interval '1 ms' "
                       "WHERE id = $1", uuid.UUID(created["id"]))
    status, body = await post(client, created["token"], [habit(uuid.uuid4().hex)])
    assert status == 401 and "expired" in body["error"], body
    assert created["token"] not in body["error"]
    listed = (await (await client.get("/api/ingest-tokens", headers=headers)).json())["tokens"]
    assert [(t["name"], t["expired"], t["revoked"]) for t in listed] == [("trial", True, False)]


@pytest.mark.parametrize(("expires_at", "words"), [
    (at(-timedelta(minutes=1)), "must be in the future"),
    (at(timedelta(days=6 * 366)), "at most 5 years ahead"),
    ("tomorrow", "expires_at"),
])
async def test_an_expiry_in_the_past_or_too_far_is_refused(client, person, expires_at,
                                                          words):
    _, headers = person
    made = await client.post("/api/ingest-tokens", headers=headers, json={
        "name": "bad", "domains": ["habits"], "expires_at": expires_at})
    assert made.status == 400 and words in (await made.json())["error"]


async def test_a_token_without_expiry_lasts_until_revoked(client, person):
    _, headers = person
    created = await new_token(client, headers)
    assert created["expires_at"] is None and created["expired"] is False


async def test_guessing_tokens_gets_429_before_any_lookup_once_the_address_is_refused_too_often(
        client, person):
    _, headers = person
    good = (await new_token(client, headers))["token"]
    statuses = []
    for n in range(INGEST_REFUSED_BURST + 3):
        response = await client.post("/api/signals", json={"signals": [habit(f"g{n}")]},
                                     headers={"Authorization": f"Bearer oo_it_guess{n:04d}"})
        statuses.append(response.status)
    assert statuses[:INGEST_REFUSED_BURST] == [401] * INGEST_REFUSED_BURST
    assert set(statuses[INGEST_REFUSED_BURST:]) == {429}
    # The address is held back whatever it sends now, a valid token too, with Retry-After.
    response = await client.post("/api/signals", json={"signals": [habit(uuid.uuid4().hex)]},
                                 headers={"Authorization": f"Bearer {good}"})
    assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    assert "refused ingest tokens" in (await response.json())["error"]
