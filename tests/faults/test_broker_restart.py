"""The broker is stopped (SIGTERM) and killed (SIGKILL) mid-stream.

A worker and the web app's outbox relay are running. While the broker is
away, the web keeps accepting context signals (they wait in the outbox).
When it is back, both reconnect on their own: every signal, produced before,
accepted during, or produced after an outage, is folded exactly once. The
time from the broker answering again to the last signal folded is printed.
"""

from __future__ import annotations

import asyncio

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from oo.infra.common import pid_alive
from oo.settings import Settings
from tests.conftest import oo_test_environ
from tests.helpers import consume_until, produce
from topics.catalog import SIGNALS
from topics.codec import encode
from topics.records import MoodLogged
from web.app import create_app
from web.session import COOKIE, open_session

pytestmark = [pytest.mark.faults, pytest.mark.integration]
PEOPLE = 40


def moods(people: list[str], tag: str, now: datetime) -> list[tuple[bytes, bytes]]:
    return [(u.encode(), encode(MoodLogged(event_id=f"{u}-{tag}", user_id=u, source="test",
                                           occurred_at=now, score=1))) for u in people]


async def test_worker_and_relay_reconnect_after_the_broker_stops_and_is_killed(
        broker, topics, workers, postgres, tmp_path, capsys):
    bootstrap = topics
    own = Settings.from_env({**oo_test_environ(), "OO_KAFKA_BOOTSTRAP": bootstrap,
                             "OO_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem")})
    db = await asyncpg.connect(postgres)
    people, sessions = [], {}
    for _ in range(PEOPLE):
        user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
        people.append(str(user_id))
        sessions[str(user_id)] = await open_session(db, user_id)
    keys = {u.encode() for u in people}
    expected = {k: 0 for k in keys}
    worker = workers(0)
    worker.start()
    recoveries = {}
    try:
        async with TestClient(TestServer(create_app(own))) as client:
            async def accept_from_the_web() -> None:
                for user, session in sessions.items():
                    response = await client.post(
                        "/api/context", json={"kind": "page_visible"},
                        headers={"Cookie": f"{COOKIE}={session.token}",
                                 "X-CSRF-Token": session.csrf_token})
                    assert response.status == 202, await response.text()
                    expected[user.encode()] += 1

            async def folded_all(timeout: float) -> None:
                changelog = f"{worker.app_id}-features-changelog"

                def done(kept: list) -> bool:
                    latest = {r.key: r.value for r in kept}
                    return all(latest.get(k) is not None and sum(
                        json.loads(latest[k])["signals_by_domain"].values()) == n
                        for k, n in expected.items())

                await consume_until(bootstrap, changelog, done, keep=lambda r: r.key in keys,
                                    timeout=timeout)

            now = datetime.now(UTC)
            await produce(bootstrap, SIGNALS["mood"].name, moods(people, "before", now))
            for k in keys:
                expected[k] += 1
            await accept_from_the_web()
            await folded_all(90)

            for phase, how in (("SIGTERM", broker.down), ("SIGKILL", lambda: _kill(broker))):
                how()
                # Each step bounded, so a hang names its step (not only the test's timeout).
                await step(accept_from_the_web(), 60, f"{phase}: the web accepting while away")
                broker.up()
                assert broker.status().running, f"{phase}: the broker did not come back"
                back = time.monotonic()
                later = now + timedelta(minutes=len(recoveries) + 1)
                await step(produce(bootstrap, SIGNALS["mood"].name, moods(people, phase, later)),
                           60, f"{phase}: producing after the restart")
                for k in keys:
                    expected[k] += 1
                await folded_all(180)
                recoveries[phase] = (time.monotonic() - back, sum(expected.values()))
            remaining = await db.fetchval("SELECT count(*) FROM outbox WHERE key = ANY($1::text[])",
                                          people)
    finally:
        await db.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", people)
        await db.close()
    with capsys.disabled():
        print("\nbroker restart: " + ", ".join(
            f"{phase}: all {n} signals so far folded once, {s:.1f} s after the broker "
            "answered again" for phase, (s, n) in recoveries.items()))
    assert remaining == 0, f"{remaining} accepted events never left the outbox"


async def step(work, timeout: float, what: str):
    try:
        return await asyncio.wait_for(work, timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: not done in {timeout:.0f} s") from None


def _kill(broker) -> None:
    pid = broker.status().pid
    assert pid is not None, "the broker is not running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.1)


async def test_the_web_shuts_down_in_bounded_time_while_the_broker_is_down(
        broker, topics, postgres, tmp_path):
    """An idempotent producer never expires a batch (aio-libs/aiokafka#1101): a relay holding
    one while the broker is down used to hang the web's shutdown for good. The row stays."""
    own = Settings.from_env({**oo_test_environ(), "OO_KAFKA_BOOTSTRAP": topics,
                             "OO_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem")})
    db = await asyncpg.connect(postgres)
    user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(db, user_id)
    headers = {"Cookie": f"{COOKIE}={session.token}", "X-CSRF-Token": session.csrf_token}

    async def queued() -> int:
        return await db.fetchval("SELECT count(*) FROM outbox WHERE key = $1", str(user_id))

    client = TestClient(TestServer(create_app(own)))
    await client.start_server()
    try:
        response = await client.post("/api/context", json={"kind": "page_visible"},
                                     headers=headers)
        assert response.status == 202
        deadline = time.monotonic() + 60
        while await queued():  # the relay leads and publishes
            assert time.monotonic() < deadline, "the relay never published"
            await asyncio.sleep(0.2)
        broker.down()
        response = await client.post("/api/context", json={"kind": "page_hidden"},
                                     headers=headers)
        assert response.status == 202
        await asyncio.sleep(2)  # the relay has the row's batch in its producer by now
        started = time.monotonic()
        await step(client.close(), 60, "the web's shutdown with the broker down")
        took = time.monotonic() - started
        assert await queued() == 1, "the accepted event left the outbox without a broker"
    finally:
        broker.up()
        await db.execute("DELETE FROM users WHERE id = $1", user_id)
        await db.close()
    print(f"\nweb shutdown with the broker down: {took:.1f} s")
