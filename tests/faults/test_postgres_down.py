"""PostgreSQL goes down under the web app and the notifier, then comes back.

While it is down the web answers 503 with a clear JSON message and a
`Retry-After` (no 500, no hang), and the notifier keeps retrying the decision
it holds. When it is back: the decision is stored, and a reaction accepted
before the outage reaches Kafka through the outbox. Nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import getpass
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.tips import TipStore
from oo.infra.postgres import LocalPostgres
from oo.migrate import migrate
from oo.settings import Settings
from tests.conftest import SLOT, oo_test_environ, port
from tests.faults.conftest import FaultWorker
from tests.helpers import consume_until, produce
from topics.catalog import FEEDBACK, TIPS_DECIDED
from topics.codec import decode, encode
from topics.records import FeedbackGiven, Tip, TipDecided
from web.app import create_app
from web.session import COOKIE, open_session

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.fixture
def own_postgres():
    suffix = f"-{SLOT}" if SLOT else ""
    settings = Settings.from_env({
        **oo_test_environ(),
        "OO_DATABASE_URL": f"postgresql://oo@127.0.0.1:{port(25632)}/oo_faults",
        "OO_STATE_DIR": f"/var/tmp/oo-test-faults-pg-{getpass.getuser()}{suffix}"})
    server = LocalPostgres.from_settings(settings, log=lambda _: None)
    server.up()
    asyncio.run(migrate(settings.database_url, log=lambda _: None))
    try:
        yield server, settings.database_url
    finally:
        server.down()


def decision(user: str, title: str) -> TipDecided:
    now = datetime.now(UTC)
    decision_id = uuid.uuid4().hex
    return TipDecided(
        event_id=decision_id, user_id=user, occurred_at=now, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.5, reason="test",
        tip=Tip(id="advice:water", kind="advice", title=title, source="catalogue"),
        context_snapshot={"moment": "app_opened"}, expires_at=now + timedelta(hours=4))


async def test_web_answers_503_and_nothing_accepted_is_lost_while_postgres_is_down(
        own_postgres, topics, settings, tmp_path, capsys):
    server, dsn = own_postgres
    bootstrap = topics
    own = Settings.from_env({**oo_test_environ(), "OO_KAFKA_BOOTSTRAP": bootstrap,
                             "OO_DATABASE_URL": dsn,
                             "OO_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem")})
    db = await asyncpg.connect(dsn)
    user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(db, user_id)
    await db.close()
    user = str(user_id)
    headers = {"Cookie": f"{COOKIE}={session.token}", "X-CSRF-Token": session.csrf_token}
    worker = FaultWorker(settings, f"oo-fault-{uuid.uuid4().hex[:8]}", bootstrap, port(26310),
                         env={"OO_DATABASE_URL": dsn})
    worker.start()
    try:
        async with TestClient(TestServer(create_app(own))) as client:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            before = decision(user, "Before the outage")
            await TipStore(pool).record_decision(before)
            await pool.close()
            accepted = await client.post(f"/api/tips/{before.decision_id}/reactions",
                                         json={"reaction": "ack"}, headers=headers)
            assert accepted.status == 202

            server.down()  # a clean stop; the pools' connections break
            timings = []
            for path in ("/api/tip", "/", "/api/me"):
                started = time.monotonic()
                response = await client.get(path, headers=headers)
                timings.append(time.monotonic() - started)
                body = await response.json()
                assert response.status == 503, (path, response.status, body)
                assert "temporarily unavailable" in body["error"] and response.headers["Retry-After"]
            refused = await client.post("/api/context", json={"kind": "app_opened"},
                                        headers=headers)
            assert refused.status == 503  # not accepted: the page keeps it and sends it again
            during = decision(user, "During the outage")
            await produce(bootstrap, TIPS_DECIDED.name, [(user.encode(), encode(during))])
            await asyncio.sleep(3)  # the notifier is retrying now
            server.up()

            async def stored() -> bool:
                conn = await asyncpg.connect(dsn)
                try:
                    return bool(await conn.fetchval(
                        "SELECT true FROM tip_instances WHERE decision_id = $1", during.decision_id))
                finally:
                    await conn.close()

            deadline = time.monotonic() + 60
            while not await stored():
                assert time.monotonic() < deadline, "the notifier never stored the decision"
                await asyncio.sleep(0.5)
            (feedback,) = await consume_until(
                bootstrap, FEEDBACK.name, lambda kept: len(kept) >= 1,
                keep=lambda r: r.key == user.encode(), timeout=60)
            back = await client.get("/api/tip", headers=headers)
            assert back.status == 200 and (await back.json())["tip"]["title"] == "During the outage"
    finally:
        worker.stop()
    with capsys.disabled():
        print(f"\npostgres down: 503 in {max(timings):.2f} s at most; the decision held by the "
              "notifier was stored and the reaction accepted before reached Kafka")
    assert max(timings) < 6
    assert decode(FeedbackGiven, feedback.value).decision_id == before.decision_id
