"""The web app's exposure: /metrics behind its token, headers on every response, CSRF's Origin check."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.test_api import Person, give_tip
from topics.admin import ensure_topics
from web.app import create_app
from web.session import open_session

pytestmark = pytest.mark.integration
TOKEN = "web-metrics-token-0123456789"


@pytest.fixture
async def serve(settings, kafka, postgres, tmp_path):
    """Start the web app (no relay) with some settings changed; closed after the test."""
    started: list[TestClient] = []

    async def start(**changes) -> TestClient:
        await ensure_topics(kafka, partitions=settings.topic_partitions,
                            replication=settings.topic_replication, log=lambda _: None)
        own = dataclasses.replace(settings, vapid_private_key=tmp_path / "vapid.pem", **changes)
        client = TestClient(TestServer(create_app(own, relay=False)))
        await client.start_server()
        started.append(client)
        return client

    yield start
    for client in started:
        await client.close()


@pytest.fixture
async def person(pool) -> AsyncIterator[Person]:
    user_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(pool, user_id)
    yield Person(user_id, session.token, session.csrf_token)
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)


async def test_web_metrics_need_the_token_when_one_is_set(serve):
    client = await serve(metrics_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"},
                    {"Authorization": TOKEN}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        body = await response.text()
        assert "oo_web_requests_total" not in body and "oo_product" not in body
        assert TOKEN not in body
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    assert "oo_web_requests_total" in await response.text()


async def test_every_dynamic_response_is_no_store_and_names_no_server_version(serve, pool,
                                                                              person):
    client = await serve()
    await give_tip(pool, person)
    responses = {
        "tip": await client.get("/api/tip", headers=person.headers()),
        "me": await client.get("/api/me", headers=person.headers()),
        "preferences": await client.get("/api/preferences", headers=person.headers()),
        "tokens": await client.get("/api/ingest-tokens", headers=person.headers()),
        "export": await client.get("/me/export", headers=person.headers()),
        "unauthorized": await client.get("/api/me"),
        "not found": await client.get("/no/such/page"),
        "health": await client.get("/health"),
        "page": await client.get("/", headers=person.headers()),
    }
    for what, response in responses.items():
        assert response.headers["Cache-Control"] == "no-store", what
        assert response.headers["Server"] == "oO", what
        assert "Strict-Transport-Security" not in response.headers, what  # plain http
    static = await client.get("/manifest.webmanifest")
    assert static.status == 200 and static.headers["Server"] == "oO"
    assert static.headers.get("Cache-Control") != "no-store"  # public files may be cached


async def test_hsts_when_the_public_url_is_https(serve):
    client = await serve(public_url="https://oo.example.org")
    for path in ("/health", "/no/such/page", "/manifest.webmanifest"):
        response = await client.get(path)
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000", path


@pytest.mark.parametrize(("origin", "status"), [
    ("https://evil.example", 403),
    ("null", 403),
    ("http://127.0.0.1.evil.example", 403),
    (None, 202),  # no Origin (a non-browser client): the CSRF token alone
    ("SELF", 202),  # this host, as the browser names it
    ("https://oo.example.org", 202),  # the public URL, behind a TLS-terminating proxy
])
async def test_csrf_also_checks_the_origin(serve, person, origin, status):
    client = await serve(public_url="https://oo.example.org")
    headers = person.headers()  # cookie and the right CSRF token
    if origin == "SELF":
        origin = str(client.make_url("")).rstrip("/")
    if origin is not None:
        headers["Origin"] = origin
    response = await client.post("/api/context", json={"kind": "app_opened",
                                                       "device": uuid.uuid4().hex[:8]},
                                 headers=headers)
    assert response.status == status, await response.text()
    if status == 403:
        assert "Origin" in (await response.json())["error"]
