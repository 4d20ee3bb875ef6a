"""Delete me: after `DELETE /api/me`, nothing about the person is left to read.

A person with everything oO can hold (a session, consents, a device, tips
with deliveries, an ingest token, a Todoist connection, state in the
engine's tables) asks to be deleted. Then: Todoist was told to revoke oO's
access; every row of every PostgreSQL table is scanned for anything of theirs
(their id, their subject at the provider, their tokens); the engine's Faust
tables (their changelog topics) end with a tombstone for them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.vault import new_key
from tests.conftest import port
from tests.helpers import consume_until, read_to_end
from tests.integration.test_api import Person, browser_keys, give_tip
from tests.integration.test_vault import everything_as_text
from tests.peers.todoist import BASE as TODOIST, LocalTodoist, todoist  # noqa: F401 (fixture)
from topics.admin import ensure_topics
from web.app import create_app
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration
APP_PORT = port(28750)
BASE = f"http://127.0.0.1:{APP_PORT}"
KEYS = (("k1", base64.b64decode(new_key())),)
TABLES = ("features", "timers")  # the engine's Faust tables (agents/engine.py)


@pytest.fixture
async def client(settings, kafka, postgres, todoist, tmp_path) -> AsyncIterator[TestClient]:  # noqa: F811
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    todoist.redirect_uri = f"{BASE}/connectors/todoist/callback"
    own = dataclasses.replace(
        settings, public_url=BASE, vault_keys=KEYS, app_id=f"oo-test-{uuid.uuid4().hex[:8]}",
        todoist_client_id=todoist.client_id, todoist_client_secret=todoist.client_secret,
        todoist_auth_url=TODOIST, todoist_api_url=TODOIST, vapid_private_key=tmp_path / "v.pem")
    server = TestServer(create_app(own), host="127.0.0.1", port=APP_PORT)
    async with TestClient(server) as test_client:
        yield test_client


@dataclasses.dataclass
class Everything:
    person: Person
    subject: str
    tokens: list[str]


async def a_person_with_everything(client: TestClient, pool: asyncpg.Pool,
                                   todoist: LocalTodoist) -> Everything:  # noqa: F811
    subject = f"deleted-{uuid.uuid4().hex[:8]}"
    user_id = await pool.fetchval(
        "INSERT INTO users (oidc_issuer, oidc_subject, display_name) VALUES ($1, $2, $3) "
        "RETURNING id", "https://id.example", subject, f"Name {subject}")
    await pool.execute("INSERT INTO consents (user_id, document, version_hash) VALUES "
                       "($1, 'terms', 'h1'), ($1, 'privacy', 'h2')", user_id)
    session = await open_session(pool, user_id)
    person = Person(user_id, session.token, session.csrf_token)
    headers = person.headers()
    assert (await client.put("/api/preferences", json={"time_zone": "Europe/Paris"},
                             headers=headers)).status == 200
    assert (await client.post("/api/push/subscriptions", headers=headers, json={
        "endpoint": f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}",
        "keys": browser_keys()})).status == 201
    made = await client.post("/api/ingest-tokens", headers=headers,
                             json={"name": "tracker", "domains": ["habits"]})
    assert made.status == 201
    ingest_token = (await made.json())["token"]
    await give_tip(pool, person, title=f"Tip for {subject}")
    # Todoist, connected by OAuth.
    todoist.add_item(todoist.approve_as, f"Task of {subject}")
    start = await client.post("/connectors/todoist/connect", data={"csrf_token": person.csrf},
                              headers={"Cookie": f"{COOKIE}={person.token}"}, allow_redirects=False)
    consent = await client.session.get(start.headers["Location"], allow_redirects=False)
    back = await client.session.get(consent.headers["Location"], allow_redirects=False,
                                    headers={"Cookie": f"{COOKIE}={person.token}"})
    assert back.status == 303, await back.text()
    assert (await client.post("/api/context", json={"kind": "app_opened"},
                              headers=headers)).status == 202
    tokens = [person.token, ingest_token, *todoist.live_tokens_of(todoist.approve_as)]
    return Everything(person, subject, tokens)


async def outbox_drained(pool: asyncpg.Pool, user_id: uuid.UUID, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while await pool.fetchval("SELECT count(*) FROM outbox WHERE key = $1", str(user_id)):
        assert time.monotonic() < deadline, "the outbox relay did not publish the person's events"
        await asyncio.sleep(0.2)


async def test_after_delete_me_postgresql_holds_nothing_of_the_person(
        client, pool, todoist):  # noqa: F811
    everything = await a_person_with_everything(client, pool, todoist)
    person = everything.person
    before = await everything_as_text(pool)
    assert str(person.id) in before and everything.subject in before  # the scan does see them

    refused = await client.delete("/api/me", json={}, headers=person.headers())
    assert refused.status == 400  # the confirmation step
    deleted = await client.delete("/api/me", json={"confirm": "delete everything"},
                                  headers=person.headers())
    assert deleted.status == 204
    assert deleted.cookies[COOKIE].value == ""
    assert deleted.headers["Clear-Site-Data"] == '"cache", "storage"'  # the offline copy too

    assert todoist.live_tokens_of(todoist.approve_as) == []  # revoked at Todoist
    assert (await client.get("/api/me", headers=person.headers())).status == 401
    await outbox_drained(pool, person.id)  # the deletion event is published, then dropped
    after = await everything_as_text(pool)
    for trace in [str(person.id), everything.subject, f"Name {everything.subject}",
                  *everything.tokens]:
        assert trace not in after, f"{trace[:12]}… is still in PostgreSQL"


async def last_values(kafka: str, topic: str, key: bytes) -> list[bytes | None]:
    records = await read_to_end(kafka, topic, keep=lambda r: r.key == key)
    return [r.value for r in records]


async def test_after_delete_me_the_engine_tables_end_with_tombstones(
        client, pool, todoist, worker, kafka):  # noqa: F811
    everything = await a_person_with_everything(client, pool, todoist)
    key = str(everything.person.id).encode()
    features = f"{worker.app_id}-features-changelog"
    await consume_until(kafka, features, lambda kept: bool(kept),
                        keep=lambda r: r.key == key and r.value is not None, timeout=60)

    deleted = await client.delete("/api/me", json={"confirm": "delete everything"},
                                  headers=everything.person.headers())
    assert deleted.status == 204
    # The engine keeps a forgotten marker (the deletion time, nothing else) for the forget
    # window (5 s in tests), then both tables end with tombstones. Waited for on the broker;
    # the bound is the window plus a minute for a loaded machine.
    for table in TABLES:
        changelog = f"{worker.app_id}-{table}-changelog"
        deadline = time.monotonic() + 65
        while True:
            values = await last_values(kafka, changelog, key)
            if values and values[-1] is None:
                break
            assert time.monotonic() < deadline, f"{table} still holds {values[-1]!r}"
            await asyncio.sleep(0.5)
