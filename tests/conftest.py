"""Session fixtures: the real Kafka broker and PostgreSQL server for tests.

Tests use their own ports and state folder, so they never touch a running
`oo dev`. A service already running there is reused; what a session starts it
also stops. Override with OO_TEST_KAFKA_BOOTSTRAP / OO_TEST_DATABASE_URL.

OO_TEST_SLOT=N (0-7, default 0) moves every port a test uses N*1000 lower and
the state folder to its own path, so N+1 test sessions can run side by side
on one machine without sharing a broker or a database.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
from collections.abc import Iterator

import asyncpg
import pytest

from oo.infra.kafka import LocalKafka
from oo.infra.postgres import LocalPostgres
from oo.migrate import migrate
from oo.settings import Settings

SLOT = int(os.environ.get("OO_TEST_SLOT", "0"))
if not 0 <= SLOT <= 7:
    raise SystemExit(f"OO_TEST_SLOT must be 0-7, got {SLOT}")


def port(number: int) -> int:
    """A test port, moved for this session's OO_TEST_SLOT."""
    return number - 1000 * SLOT


_SUFFIX = f"-{SLOT}" if SLOT else ""
TEST_ENV = {
    "OO_ENV": "test",
    "OO_KAFKA_BOOTSTRAP": os.environ.get("OO_TEST_KAFKA_BOOTSTRAP", f"127.0.0.1:{port(29092)}"),
    "OO_DATABASE_URL": os.environ.get(
        "OO_TEST_DATABASE_URL", f"postgresql://oo@127.0.0.1:{port(25432)}/oo_test"
    ),
    "OO_STATE_DIR": os.environ.get("OO_TEST_STATE_DIR", f"/var/tmp/oo-test-{getpass.getuser()}{_SUFFIX}"),
    "OO_WEB_PORT": str(port(28080)),
    "OO_WORKER_WEB_PORT": str(port(26066)),
    "OO_TABLE_STORE": "memory://",
    # A deleted person's forgotten marker is purged 5 s after the deletion (a day in
    # production), so tests see the tables' end state; tests of late signals set more.
    "OO_FORGET_WINDOW_S": "5",
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


async def _empty_database(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres(settings: Settings) -> Iterator[str]:
    """DSN of a running, migrated local PostgreSQL database.

    A server this session starts begins with an empty database, like the broker:
    rows an interrupted run left behind must not change what a test counts.
    """
    server = LocalPostgres.from_settings(settings)
    started = server.up()
    if started:
        asyncio.run(_empty_database(settings.database_url))
    asyncio.run(migrate(settings.database_url, log=lambda _: None))
    yield settings.database_url
    if started:
        server.down()
