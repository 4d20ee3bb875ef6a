"""The web app against the real PostgreSQL and Kafka: health, readiness, JSON errors, headers."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from web.app import create_app
from web.security import HEADERS

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(settings, kafka, postgres):
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def test_health_answers_without_dependencies(client):
    response = await client.get("/health")
    assert response.status == 200 and (await response.json()) == {"status": "alive"}


async def test_ready_when_kafka_and_postgres_answer(client):
    response = await client.get("/ready")
    body = await response.json()
    assert response.status == 200, body
    assert body["checks"]["kafka"]["ok"] and body["checks"]["postgres"]["ok"]


async def test_not_ready_and_says_which_when_postgres_is_unreachable(settings, kafka):
    broken = dataclasses.replace(settings, database_url="postgresql://oo@127.0.0.1:1/nothing")
    async with TestClient(TestServer(create_app(broken))) as client:
        response = await client.get("/ready")
        body = await response.json()
    assert response.status == 503
    assert body["checks"]["postgres"]["ok"] is False and body["checks"]["kafka"]["ok"] is True


async def test_unknown_route_is_a_json_404_with_security_headers(client):
    response = await client.get("/no/such/thing")
    assert response.status == 404
    assert (await response.json())["error"] == "Not Found"
    for name, value in HEADERS.items():
        assert response.headers[name] == value


async def test_wrong_method_is_a_json_405(client):
    response = await client.post("/health")
    assert response.status == 405 and "error" in await response.json()


async def test_the_page_is_served_black_with_a_strict_csp(client):
    response = await client.get("/")
    text = await response.text()
    assert response.status == 200 and "<main" in text and "<script>" not in text
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_the_published_contracts_are_served(client):
    for path, words in (("/api/asyncapi.yaml", "asyncapi: 3.0.0"), ("/api/asyncapi.json", '"asyncapi"'),
                        ("/api/openapi.yaml", "openapi: 3.1.0")):
        response = await client.get(path)
        assert response.status == 200 and words in await response.text(), path


async def test_requests_are_traced_and_counted(client):
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await client.get("/health", headers={"traceparent": incoming})
    assert response.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    await client.get("/no/such/page")
    text = await (await client.get("/metrics")).text()
    assert 'oo_web_requests_total{route="/health",method="GET",status="200"} 1' in text
    assert 'oo_web_requests_total{route="unmatched",method="GET",status="404"} 1' in text
    assert 'oo_web_request_seconds_count{route="/health"} 1' in text
