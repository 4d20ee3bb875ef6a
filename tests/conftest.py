"""Session fixtures: the real Kafka broker and PostgreSQL server for tests.

Tests use their own ports and state folder, so they never touch a running
`oo dev`. A service already running there is reused; what a session starts it
also stops. Override with OO_TEST_KAFKA_BOOTSTRAP / OO_TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import shutil
import getpass
import os
from collections.abc import Iterator

import pytest

from oo.infra.kafka import LocalKafka
from oo.infra.postgres import LocalPostgres
from oo.migrate import migrate
from oo.settings import Settings

TEST_ENV = {
    "OO_ENV": "test",
    "OO_KAFKA_BOOTSTRAP": os.environ.get("OO_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:29092"),
    "OO_DATABASE_URL": os.environ.get(
        "OO_TEST_DATABASE_URL", "postgresql://oo@127.0.0.1:25432/oo_test"
    ),
    "OO_STATE_DIR": os.environ.get("OO_TEST_STATE_DIR", f"/var/tmp/oo-test-{getpass.getuser()}"),
    "OO_WEB_PORT": "28080",
    "OO_WORKER_WEB_PORT": "26066",
    "OO_TABLE_STORE": "memory://",
}


def oo_test_environ() -> dict[str, str]:
    """The environment a test process (or a subprocess it starts) should see."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("OO_")}
    for name in ("OO_CACHE_DIR", "OO_KAFKA_VERSION"):
        if name in os.environ:
            keep[name] = os.environ[name]
    return {**keep, **TEST_ENV}


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env(oo_test_environ())


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[str]:
    """Bootstrap servers of a running local Kafka broker.

    A broker this session starts begins empty: fresh consumer groups in tests
    read from the earliest offset, so old runs' messages would only slow them.
    """
    broker = LocalKafka.from_settings(settings)
    if not broker.status().running:
        shutil.rmtree(settings.state_dir / "kafka" / "data", ignore_errors=True)
    started = broker.up()
    yield settings.kafka_bootstrap_servers
    if started:
        broker.down()


@pytest.fixture(scope="session")
def postgres(settings: Settings) -> Iterator[str]:
    """DSN of a running, migrated local PostgreSQL database."""
    server = LocalPostgres.from_settings(settings)
    started = server.up()
    asyncio.run(migrate(settings.database_url, log=lambda _: None))
    yield settings.database_url
    if started:
        server.down()
