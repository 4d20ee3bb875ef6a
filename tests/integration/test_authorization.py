"""Authorization: one person can never read, answer or remove another's things.

Two people, A and B, each with a session, a tip, a device, an ingest token and
a Todoist connection. A tries every endpoint on B's things; B's things stay
as they were. And no state-changing request made with a session cookie works
without that session's CSRF token (a cross-site form or fetch cannot send it).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.credentials import CredentialStore, Tokens
from adapters.vault import Vault, new_key
from tests.integration.test_api import Person, browser_keys, give_tip
from topics.admin import ensure_topics
from web.app import create_app
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration
KEYS = (("k1", base64.b64decode(new_key())),)


@pytest.fixture
async def client(settings, kafka, postgres, tmp_path) -> AsyncIterator[TestClient]:
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    own = dataclasses.replace(settings, vapid_private_key=tmp_path / "vapid.pem", vault_keys=KEYS,
                              todoist_client_id="c", todoist_client_secret="s",
                              todoist_auth_url="http://127.0.0.1:9", todoist_api_url="http://127.0.0.1:9",
                              app_id=f"oo-test-{uuid.uuid4().hex[:8]}")
    async with TestClient(TestServer(create_app(own, relay=False))) as test_client:
        yield test_client


@dataclasses.dataclass
class Owner:
    person: Person
    decision: str
    endpoint: str
    ingest_id: str
    ingest_token: str


async def make_owner(client: TestClient, pool: asyncpg.Pool, title: str) -> Owner:
    user_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(pool, user_id)
    person = Person(user_id, session.token, session.csrf_token)
    decision = await give_tip(pool, person, title=title)
    endpoint = f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}"
    sub = await client.post("/api/push/subscriptions", headers=person.headers(),
                            json={"endpoint": endpoint, "keys": browser_keys()})
    assert sub.status == 201, await sub.text()
    made = await client.post("/api/ingest-tokens", headers=person.headers(),
                             json={"name": "tracker", "domains": ["habits"]})
    assert made.status == 201
    token = await made.json()
    await CredentialStore(pool, Vault(KEYS)).save(user_id, "todoist", Tokens(f"tok-{title}"),
                                                  ("data:read_write",))
    return Owner(person, decision, endpoint, token["id"], token["token"])


@pytest.fixture
async def a_and_b(client, pool) -> AsyncIterator[tuple[Owner, Owner]]:
    a = await make_owner(client, pool, "A's tip")
    b = await make_owner(client, pool, "B's tip")
    yield a, b
    await pool.execute("DELETE FROM users WHERE id = ANY($1)", [a.person.id, b.person.id])


async def b_is_untouched(pool: asyncpg.Pool, b: Owner) -> None:
    assert await pool.fetchval("SELECT status FROM tip_instances WHERE decision_id = $1",
                               b.decision) == "pending"
    assert await pool.fetchval("SELECT user_id FROM push_subscriptions WHERE endpoint = $1",
                               b.endpoint) == b.person.id
    assert await pool.fetchval("SELECT revoked_at FROM ingest_tokens WHERE id = $1",
                               uuid.UUID(b.ingest_id)) is None
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1",
                               b.person.id) == 1
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", b.person.id) == 1
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1",
                               b.person.id) == 1


async def test_a_reads_only_their_own_things(client, pool, a_and_b):
    a, b = a_and_b
    tip = await (await client.get("/api/tip", headers=a.person.headers())).json()
    assert tip["tip"]["decision_id"] == a.decision
    me = await (await client.get("/api/me", headers=a.person.headers())).json()
    assert me["id"] == str(a.person.id) and me["devices"] == 1
    tokens = await (await client.get("/api/ingest-tokens", headers=a.person.headers())).json()
    assert b.ingest_id not in orjson.dumps(tokens).decode()
    page = await (await client.get("/", headers=a.person.headers())).text()
    assert "A&#x27;s tip" in page or "A's tip" in page
    assert "B&#x27;s tip" not in page and "B's tip" not in page and b.decision not in page
    connectors = await (await client.get("/connectors", headers=a.person.headers())).text()
    assert b.person.csrf not in connectors
    # The live stream sends A's tip, never B's.
    async with client.get("/api/events", headers=a.person.headers()) as stream:
        first = b""
        while b"event: tip" not in first:
            first += await asyncio.wait_for(stream.content.readany(), 5)
        assert a.decision.encode() in first
        assert b.decision.encode() not in first


async def test_a_cannot_answer_unsubscribe_revoke_or_disconnect_bs_things(client, pool, a_and_b):
    a, b = a_and_b
    answered = await client.post(f"/api/tips/{b.decision}/reactions", json={"reaction": "done"},
                                 headers=a.person.headers())
    assert answered.status == 404
    for reaction in ("dismiss", "save", "seen"):
        response = await client.post(f"/api/tips/{b.decision}/reactions",
                                     json={"reaction": reaction}, headers=a.person.headers())
        assert response.status == 404
    unsubscribed = await client.delete("/api/push/subscriptions", json={"endpoint": b.endpoint},
                                       headers=a.person.headers())
    assert unsubscribed.status == 404
    revoked = await client.delete(f"/api/ingest-tokens/{b.ingest_id}", headers=a.person.headers())
    assert revoked.status == 404
    # A's disconnect of Todoist is A's own; B's connection stays.
    await client.post("/connectors/todoist/disconnect", data={"csrf_token": a.person.csrf},
                      headers={"Cookie": f"{COOKIE}={a.person.token}"}, allow_redirects=False)
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1",
                               a.person.id) == 0
    await b_is_untouched(pool, b)


async def test_bs_csrf_token_does_not_work_with_as_cookie(client, pool, a_and_b):
    a, b = a_and_b
    mixed = {"Cookie": f"{COOKIE}={a.person.token}", "X-CSRF-Token": b.person.csrf}
    for method, path, body in [
        ("DELETE", "/api/me", {"confirm": "delete everything"}),
        ("POST", f"/api/tips/{a.decision}/reactions", {"reaction": "done"}),
        ("PUT", "/api/preferences", {"daily_budget": 1}),
    ]:
        response = await client.request(method, path, json=body, headers=mixed)
        assert response.status == 403, (method, path)
    await b_is_untouched(pool, b)
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", a.person.id) == 1


# Every state-changing route reached with the cookie, as a cross-site form or fetch would.
UNSAFE = [
    ("POST", "/api/tips/{decision}/reactions", {"reaction": "done"}),
    ("POST", "/api/context", {"kind": "app_opened"}),
    ("PUT", "/api/preferences", {"daily_budget": 1}),
    ("POST", "/api/push/subscriptions", None),
    ("DELETE", "/api/push/subscriptions", {"endpoint": "{endpoint}"}),
    ("POST", "/api/ingest-tokens", {"name": "x", "domains": ["habits"]}),
    ("DELETE", "/api/ingest-tokens/{ingest_id}", None),
    ("DELETE", "/api/me", {"confirm": "delete everything"}),
    ("POST", "/auth/signout", None),
    ("POST", "/connectors/todoist/connect", None),
    ("POST", "/connectors/todoist/disconnect", None),
]


@pytest.mark.parametrize(("method", "path", "body"), UNSAFE)
@pytest.mark.parametrize("as_form", [False, True])
async def test_a_cross_site_request_without_the_csrf_token_is_refused(
        client, pool, a_and_b, method, path, body, as_form):
    a, _ = a_and_b
    url = path.format(decision=a.decision, ingest_id=a.ingest_id)
    cookie = {"Cookie": f"{COOKIE}={a.person.token}", "Origin": "https://evil.example"}
    if as_form:  # what a cross-site <form method=post> sends: no header, no token field
        response = await client.request(method, url, data={"reaction": "done"}, headers=cookie,
                                        allow_redirects=False)
    else:
        payload = {k: (v.format(endpoint=a.endpoint) if isinstance(v, str) else v)
                   for k, v in (body or {}).items()}
        response = await client.request(method, url, json=payload, headers=cookie,
                                        allow_redirects=False)
    assert response.status == 403, (method, url, await response.text())
    # Nothing happened to A either.
    assert await pool.fetchval("SELECT status FROM tip_instances WHERE decision_id = $1",
                               a.decision) == "pending"
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", a.person.id) == 1
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1",
                               a.person.id) == 1
    assert await pool.fetchval("SELECT count(*) FROM push_subscriptions WHERE user_id = $1",
                               a.person.id) == 1
