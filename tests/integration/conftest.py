"""Integration fixtures: a real `oo worker` process on the real broker."""

from __future__ import annotations

import dataclasses
import signal
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import oo_test_environ
from tests.helpers import oo_process, stop_process, wait_http
from topics.admin import ensure_topics

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Worker:
    """`oo worker` with its own app id (consumer group and tables); restartable."""

    def __init__(self, settings, app_id: str, env: dict[str, str] | None = None,
                 role: str = "all") -> None:
        self.settings = settings
        self.app_id = app_id
        self.extra_env = env or {}
        self.role = role
        port = self.extra_env.get("OO_WORKER_WEB_PORT", settings.worker_web_port)
        self.base = f"http://127.0.0.1:{port}"
        self.process = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        port = self.base.rsplit(":", 1)[1]  # workers of one app id run on different ports
        self.log = ARTIFACTS / f"worker-{self.app_id}-{port}-{self.starts}.log"
        env = {**oo_test_environ(), "OO_APP_ID": self.app_id, **self.extra_env}
        self.process = oo_process(["worker", "--role", self.role], env, self.log)
        wait_http(f"{self.base}/ready", process=self.process, log=self.log)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return stop_process(self.process, sig) if self.process else 0

    def metric(self, name: str) -> int:
        """Sum of a counter over all its labels, read from /metrics."""
        from tests.helpers import http_get

        status, body = http_get(f"{self.base}/metrics")
        assert status == 200
        return sum(int(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                   if line.startswith(name))


@pytest.fixture
async def pool(postgres):
    """A small asyncpg pool on the test database."""
    pool = await asyncpg.create_pool(postgres, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def client(settings, kafka, postgres, tmp_path):
    """The web app (with its outbox relay) in process, with a VAPID key of its own."""
    from web.app import create_app

    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    own = dataclasses.replace(settings, vapid_private_key=tmp_path / "vapid.pem")
    async with TestClient(TestServer(create_app(own))) as client:
        yield client


@pytest.fixture
async def worker(kafka, postgres, settings):
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    running = Worker(settings, f"oo-test-{uuid.uuid4().hex[:8]}")
    running.start()
    try:
        yield running
    finally:
        running.stop()
