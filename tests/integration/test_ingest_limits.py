"""Ingest's guards: times far from now are a 422."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_ingest import habit, new_token, post
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
