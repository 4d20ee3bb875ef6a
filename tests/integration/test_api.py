"""The PWA's JSON API on the real PostgreSQL and Kafka: sessions, tips, reactions, live updates."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.tips import TipStore
from tests.helpers import consume_until, read_to_end
from topics.catalog import FEEDBACK, SIGNALS
from topics.codec import decode
from topics.records import ContextObserved, FeedbackGiven, LifecycleChanged, Tip, TipDecided
from web.app import MAX_BODY, SIGNIN_BURST, create_app
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration


class Person:
    """A user row with an open session; `headers()` are what its browser sends."""

    def __init__(self, user_id: uuid.UUID, token: str, csrf: str) -> None:
        self.id, self.token, self.csrf = user_id, token, csrf

    def headers(self, csrf: bool = True) -> dict[str, str]:
        out = {"Cookie": f"{COOKIE}={self.token}"}
        if csrf:
            out["X-CSRF-Token"] = self.csrf
        return out


@pytest.fixture
async def person(pool):
    user_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(pool, user_id)
    yield Person(user_id, session.token, session.csrf_token)
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)


async def give_tip(pool, person: Person, kind: str = "todo", title: str = "Call the bank",
                   expires_in: timedelta = timedelta(hours=4), at: datetime | None = None) -> str:
    """Record a decision the way the notifier does (it also wakes the person's pages)."""
    now = at or datetime.now(UTC)
    decision_id = uuid.uuid4().hex
    tip = Tip(id=f"{kind}:{decision_id[:6]}", kind=kind, title=title, body="Before noon.",
              source="test")
    decided = TipDecided(
        event_id=decision_id, user_id=str(person.id), occurred_at=now, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.5, reason="test", tip=tip,
        context_snapshot={"moment": "app_opened"}, expires_at=now + expires_in)
    await TipStore(pool).record_decision(decided)
    return decision_id


def feedback_for(decision_id: str):
    return lambda r: r.value is not None and decision_id.encode() in r.value


# --- sessions and CSRF ----------------------------------------------------------------


async def test_without_a_session_the_api_answers_401_in_json(client):
    response = await client.get("/api/tip")
    assert response.status == 401 and "session" in (await response.json())["error"]


async def test_a_state_change_without_the_csrf_token_is_refused(client, person):
    response = await client.post("/api/context", json={"kind": "app_opened"},
                                 headers=person.headers(csrf=False))
    assert response.status == 403 and "X-CSRF-Token" in (await response.json())["error"]
    wrong = {**person.headers(), "X-CSRF-Token": "x" * 64}
    response = await client.post("/api/context", json={"kind": "app_opened"}, headers=wrong)
    assert response.status == 403


async def test_outside_dev_the_page_opens_no_session(client):
    response = await client.get("/")
    assert response.status == 200 and COOKIE not in response.cookies


async def test_in_dev_the_page_gives_the_demo_person_a_session(settings, kafka, pool, tmp_path):
    demo = await pool.fetchval(
        "INSERT INTO users (display_name) VALUES ('oO demo') RETURNING id")
    dev = dataclasses.replace(settings, env="dev", vapid_private_key=tmp_path / "v.pem")
    try:
        async with TestClient(TestServer(create_app(dev))) as client:
            response = await client.get("/")
            assert response.status == 200
            cookie = response.cookies[COOKIE]
            assert cookie["httponly"] and cookie["samesite"] == "Lax"
            me = await client.get("/api/me", headers={"Cookie": f"{COOKIE}={cookie.value}"})
            assert (await me.json())["id"] == str(demo)
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", demo)


# --- the current tip and reactions ------------------------------------------------------


async def test_the_current_tip_is_the_newest_open_one(client, pool, person):
    assert (await (await client.get("/api/tip", headers=person.headers())).json()) == {"tip": None}
    await give_tip(pool, person, title="Older")
    newest = await give_tip(pool, person, title="Newest")
    body = await (await client.get("/api/tip", headers=person.headers())).json()
    assert body["tip"]["decision_id"] == newest and body["tip"]["title"] == "Newest"
    page = await (await client.get("/", headers=person.headers())).text()
    assert "Newest" in page  # the first paint already has it


async def test_an_expired_tip_is_not_shown_and_cannot_be_answered(client, pool, person):
    old = await give_tip(pool, person, at=datetime.now(UTC) - timedelta(hours=5))
    assert (await (await client.get("/api/tip", headers=person.headers())).json())["tip"] is None
    response = await client.post(f"/api/tips/{old}/reactions", json={"reaction": "done"},
                                 headers=person.headers())
    assert response.status == 409 and "expired" in (await response.json())["error"]


async def test_done_is_recorded_once_and_its_feedback_reaches_kafka(client, pool, person, kafka):
    decision = await give_tip(pool, person)
    url = f"/api/tips/{decision}/reactions"
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    first = await client.post(url, json={"reaction": "done"},
                              headers={**person.headers(), "traceparent": trace})
    assert first.status == 202, await first.text()
    again = await client.post(url, json={"reaction": "done"}, headers=person.headers())
    assert again.status == 200 and (await again.json())["status"] == "already recorded"
    other = await client.post(url, json={"reaction": "dismiss"}, headers=person.headers())
    assert other.status == 409
    assert await pool.fetchval("SELECT status FROM tip_instances WHERE decision_id=$1",
                               decision) == "done"
    # The outbox relay of the app publishes it; only one event for the two requests.
    await consume_until(kafka, FEEDBACK.name, lambda kept: len(kept) >= 1,
                        keep=feedback_for(decision), timeout=30)
    await asyncio.sleep(1.5)  # time for a wrong second event to be published too
    records = await read_to_end(kafka, FEEDBACK.name, keep=feedback_for(decision))
    events = [decode(FeedbackGiven, r.value) for r in records]
    assert [(e.reaction, e.user_id, e.source) for e in events] == [("done", str(person.id), "web")]
    assert records[0].key == str(person.id).encode()
    headers = dict(records[0].headers)  # the request's trace travels with its event
    assert headers["traceparent"].decode().startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"reaction": "ack"}, 400, "ack is for advices"),
    ({"reaction": "snooze"}, 400, "snooze needs snooze_until"),
    ({"reaction": "done", "extra": 1}, 400, "extra: unknown field"),
    ({"reaction": "later"}, 400, "reaction"),
    ({"reaction": "seen", "dwell_ms": -5}, 400, "dwell_ms"),
    ([], 400, "expected a JSON object"),
])
async def test_a_bad_reaction_is_a_400_that_names_the_problem(client, pool, person, body, status,
                                                              words):
    decision = await give_tip(pool, person)
    response = await client.post(f"/api/tips/{decision}/reactions", json=body,
                                 headers=person.headers())
    assert response.status == status
    assert words in (await response.json())["error"]


async def test_malformed_requests_get_4xx_json_never_500(client, pool, person):
    decision = await give_tip(pool, person)
    url = f"/api/tips/{decision}/reactions"
    cases = [
        await client.post(url, data=b"{not json", headers={**person.headers(),
                                                           "Content-Type": "application/json"}),
        await client.post(url, data=b"reaction=done", headers={
            **person.headers(), "Content-Type": "application/x-www-form-urlencoded"}),
        await client.post(url, data=b"x" * (MAX_BODY + 1), headers={**person.headers(),
                                                             "Content-Type": "application/json"}),
        await client.post("/api/tips/nope/reactions", json={"reaction": "done"},
                          headers=person.headers()),
        await client.post("/api/tips/a%20b/reactions", json={"reaction": "done"},
                          headers=person.headers()),
    ]
    assert [r.status for r in cases] == [400, 415, 413, 404, 404]
    for response in cases:
        assert "error" in await response.json()


async def test_snooze_keeps_its_time_and_someone_elses_tip_is_not_found(client, pool, person):
    decision = await give_tip(pool, person)
    until = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    stranger_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    stranger = await open_session(pool, stranger_id)
    try:
        theirs = await client.post(
            f"/api/tips/{decision}/reactions", json={"reaction": "dismiss"},
            headers={"Cookie": f"{COOKIE}={stranger.token}", "X-CSRF-Token": stranger.csrf_token})
        assert theirs.status == 404
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", stranger_id)
    response = await client.post(f"/api/tips/{decision}/reactions",
                                 json={"reaction": "snooze", "snooze_until": until.isoformat()},
                                 headers=person.headers())
    assert response.status == 202
    row = await pool.fetchrow("SELECT status, snooze_until FROM tip_instances WHERE decision_id=$1",
                              decision)
    assert row["status"] == "snoozed" and row["snooze_until"] == until


# --- live updates ------------------------------------------------------------------------


async def next_event(response) -> dict:
    """The next `tip` event of an SSE stream (comments and other lines skipped)."""
    event = None
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 20)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "tip":
            return json.loads(line[6:])


async def test_an_open_page_hears_a_new_tip_and_its_answer_live(client, pool, person):
    async with client.get("/api/events", headers=person.headers()) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert await next_event(stream) == {"tip": None}
        decision = await give_tip(pool, person, title="Stretch")
        event = await next_event(stream)
        assert event["tip"]["decision_id"] == decision and event["tip"]["title"] == "Stretch"
        await client.post(f"/api/tips/{decision}/reactions", json={"reaction": "done"},
                          headers=person.headers())
        assert await next_event(stream) == {"tip": None}


# --- context, preferences, push subscriptions, me ---------------------------------------


async def test_context_and_preferences_become_signals_on_their_topics(client, person, kafka):
    opened = await client.post("/api/context", json={"kind": "app_opened", "device": "phone"},
                               headers=person.headers())
    assert opened.status == 202
    bad = await client.put("/api/preferences", json={"time_zone": "Mars/Olympus"},
                           headers=person.headers())
    assert bad.status == 400 and "time_zone" in (await bad.json())["error"]
    changed = await client.put("/api/preferences",
                               json={"time_zone": "Europe/Paris", "daily_budget": 2},
                               headers=person.headers())
    assert changed.status == 200
    assert (await changed.json())["time_zone"] == "Europe/Paris"
    prefs = await (await client.get("/api/preferences", headers=person.headers())).json()
    assert prefs == {"time_zone": "Europe/Paris", "daily_budget": 2}
    key = str(person.id).encode()
    (context,) = await consume_until(kafka, SIGNALS["context"].name, lambda kept: len(kept) >= 1,
                                     keep=lambda r: r.key == key, timeout=30)
    assert decode(ContextObserved, context.value).device == "phone"
    (life,) = await consume_until(kafka, SIGNALS["lifecycle"].name, lambda kept: len(kept) >= 1,
                                  keep=lambda r: r.key == key, timeout=30)
    change = decode(LifecycleChanged, life.value)
    assert (change.change, change.time_zone, change.daily_budget) == (
        "preferences_changed", "Europe/Paris", 2)


def browser_keys() -> dict[str, str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")  # noqa: E731
    return {"p256dh": b64(point), "auth": b64(b"0123456789abcdef")}


async def test_push_subscriptions_are_checked_stored_and_removed(client, pool, person):
    keys = browser_keys()
    endpoint = f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}"
    created = await client.post("/api/push/subscriptions",
                                json={"endpoint": endpoint, "keys": keys, "expirationTime": None},
                                headers=person.headers())
    assert created.status == 201, await created.text()
    assert await pool.fetchval("SELECT user_id FROM push_subscriptions WHERE endpoint=$1",
                               endpoint) == person.id
    refused = {
        "http://fcm.googleapis.com/fcm/send/x": "https",
        "https://internal.example.com/push/x": "allow",
        "https://169.254.169.254/latest/meta-data": "allow",
    }
    for url, words in refused.items():
        response = await client.post("/api/push/subscriptions",
                                     json={"endpoint": url, "keys": keys},
                                     headers=person.headers())
        message = (await response.json())["error"]
        assert response.status == 400 and words in message.lower(), message
    bad_key = await client.post("/api/push/subscriptions", json={
        "endpoint": endpoint, "keys": {**keys, "p256dh": "AAAA"}}, headers=person.headers())
    assert bad_key.status == 400 and "p256dh" in (await bad_key.json())["error"]
    key = await (await client.get("/api/vapid-public-key")).json()
    assert len(base64.urlsafe_b64decode(key["public_key"] + "=")) == 65
    gone = await client.delete("/api/push/subscriptions", json={"endpoint": endpoint},
                               headers=person.headers())
    assert gone.status == 204
    again = await client.delete("/api/push/subscriptions", json={"endpoint": endpoint},
                                headers=person.headers())
    assert again.status == 404


async def test_delete_me_needs_confirmation_then_removes_the_person(client, pool, person, kafka):
    await give_tip(pool, person)
    unconfirmed = await client.delete("/api/me", json={}, headers=person.headers())
    assert unconfirmed.status == 400 and "confirm" in (await unconfirmed.json())["error"]
    deleted = await client.delete("/api/me", json={"confirm": "delete everything"},
                                  headers=person.headers())
    assert deleted.status == 204
    for table, column in (("users", "id"), ("sessions", "user_id"), ("tip_instances", "user_id")):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column}=$1",
                                   person.id) == 0
    after = await client.get("/api/tip", headers=person.headers())
    assert after.status == 401
    key = str(person.id).encode()
    (event,) = await consume_until(kafka, SIGNALS["lifecycle"].name, lambda kept: len(kept) >= 1,
                                   keep=lambda r: r.key == key, timeout=30)
    assert decode(LifecycleChanged, event.value).change == "deletion_requested"


async def test_a_burst_of_reactions_gets_429_and_other_people_are_unaffected(client, pool, person):
    statuses = []
    for _ in range(40):
        response = await client.post("/api/context", json={"kind": "page_visible"},
                                     headers=person.headers())
        statuses.append(response.status)
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert "too many reactions" in (await response.json())["error"]
    assert statuses.count(202) >= 30 and 429 in statuses
    other_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    try:
        other = await open_session(pool, other_id)
        response = await client.post("/api/context", json={"kind": "page_visible"}, headers={
            "Cookie": f"{COOKIE}={other.token}", "X-CSRF-Token": other.csrf_token})
        assert response.status == 202
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", other_id)


async def test_a_burst_of_sign_in_attempts_from_one_address_gets_429(client):
    statuses = [(await client.get("/auth/login", allow_redirects=False)).status
                for _ in range(SIGNIN_BURST + 5)]
    # Not configured here (503) until the burst is spent; then refused before any work.
    assert set(statuses[:SIGNIN_BURST]) == {503} and statuses[-1] == 429
    response = await client.get("/auth/callback", allow_redirects=False)
    assert response.status == 429 and int(response.headers["Retry-After"]) >= 1


async def test_someone_elses_endpoint_cannot_be_taken_over_without_its_keys(client, pool, person):
    endpoint = f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}"
    keys = browser_keys()
    assert (await client.post("/api/push/subscriptions", json={"endpoint": endpoint, "keys": keys},
                              headers=person.headers())).status == 201
    other_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    try:
        other = await open_session(pool, other_id)
        theirs = {"Cookie": f"{COOKIE}={other.token}", "X-CSRF-Token": other.csrf_token}
        stolen = await client.post("/api/push/subscriptions",
                                   json={"endpoint": endpoint, "keys": browser_keys()},
                                   headers=theirs)
        assert stolen.status == 409
        assert await pool.fetchval("SELECT user_id FROM push_subscriptions WHERE endpoint=$1",
                                   endpoint) == person.id
        # The same browser (same keys) signed in as the other person moves with them.
        moved = await client.post("/api/push/subscriptions",
                                  json={"endpoint": endpoint, "keys": keys}, headers=theirs)
        assert moved.status == 201
        assert await pool.fetchval("SELECT user_id FROM push_subscriptions WHERE endpoint=$1",
                                   endpoint) == other_id
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", other_id)


async def test_an_open_stream_ends_when_its_person_is_deleted(client, pool, person):
    async with client.get("/api/events", headers=person.headers()) as stream:
        assert await next_event(stream) == {"tip": None}
        deleted = await client.delete("/api/me", json={"confirm": "delete everything"},
                                      headers=person.headers())
        assert deleted.status == 204
        rest = await asyncio.wait_for(stream.content.read(), 10)  # the server closes it
        assert b"event: tip" not in rest
