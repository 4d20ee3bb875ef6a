"""The worker's web server: only /health, /ready and /metrics, on loopback, metrics behind a token.

The Faust app's own aiohttp application is served in process (no broker needed):
the routes are the ones the worker would serve.
"""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.app import create_app
from oo.settings import Settings
from tests.conftest import oo_test_environ

pytestmark = pytest.mark.unit
TOKEN = "metrics-token-for-the-unit-test"


def settings_for(tmp_path, **changes) -> Settings:
    base = Settings.from_env(oo_test_environ())
    return dataclasses.replace(base, state_dir=tmp_path, app_id="oo-unit", **changes)


async def served(settings: Settings) -> TestClient:
    app = create_app(settings)
    app.web.init_server()  # what the worker does when its web service starts
    client = TestClient(TestServer(app.web.web_app))
    await client.start_server()
    return client


def test_faust_builtin_views_are_off(tmp_path):
    app = create_app(settings_for(tmp_path))
    app.web.init_server()
    paths = {r.canonical for r in app.web.web_app.router.resources()}
    assert not [p for p in paths if p.startswith(("/table", "/router", "/graph",
                                                  "/performance", "/assignment"))], paths
    assert {"/health", "/ready", "/metrics"} <= paths
    assert paths <= {"/", "/health", "/ready", "/metrics"}


def test_the_worker_binds_loopback_unless_told_otherwise(tmp_path):
    assert create_app(settings_for(tmp_path)).conf.web_bind == "127.0.0.1"
    production = settings_for(tmp_path, env="production", vapid_subject="mailto:ops@example.org")
    assert create_app(production).conf.web_bind == "127.0.0.1"
    internal = settings_for(tmp_path, worker_web_host="10.1.2.3")
    app = create_app(internal)
    assert app.conf.web_bind == "10.1.2.3" and app.conf.web_host == "10.1.2.3"
    assert Settings.from_env({"OO_WORKER_WEB_HOST": "10.1.2.3"}).worker_web_host == "10.1.2.3"
    assert Settings.from_env({}).worker_web_host == "127.0.0.1"


async def test_table_pages_of_a_person_are_not_served(tmp_path):
    client = await served(settings_for(tmp_path))
    try:
        for path in ("/table/", "/table/features/", "/table/features/someone/",
                     "/router/", "/router/features/someone/", "/graph/", "/assignment/"):
            response = await client.get(path)
            assert response.status == 404, path
    finally:
        await client.close()


async def test_metrics_need_the_token_when_one_is_set(tmp_path):
    client = await served(settings_for(tmp_path, metrics_token=TOKEN))
    try:
        for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"},
                        {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
            response = await client.get("/metrics", headers=headers)
            assert response.status == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert TOKEN not in await response.text()
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        assert "oo_consumer_lag" in await response.text()
        assert (await client.get("/health")).status == 200  # liveness stays open
    finally:
        await client.close()


async def test_without_a_token_loopback_reads_metrics_in_test(tmp_path):
    client = await served(settings_for(tmp_path))
    try:
        response = await client.get("/metrics")
        assert response.status == 200  # the test client connects over 127.0.0.1
    finally:
        await client.close()


async def test_production_without_a_token_serves_no_metrics_even_to_loopback(tmp_path):
    production = settings_for(tmp_path, env="production", vapid_subject="mailto:ops@example.org")
    client = await served(production)
    try:
        response = await client.get("/metrics")
        assert response.status == 403
        assert "OO_METRICS_TOKEN" in (await response.json())["error"]
    finally:
        await client.close()


async def test_the_server_header_names_no_versions(tmp_path):
    client = await served(settings_for(tmp_path))
    try:
        response = await client.get("/health")
        assert response.headers["Server"] == "oO"
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        await client.close()
