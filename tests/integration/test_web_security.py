"""The web app's exposure: /metrics behind its token."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from topics.admin import ensure_topics
from web.app import create_app

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
