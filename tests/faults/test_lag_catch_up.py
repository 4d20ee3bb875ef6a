"""Workers stopped while signals and decisions keep coming; on restart the lag drains.

Everything that arrived meanwhile is folded, the decision still fresh is
pushed, and the one whose tip expired while nobody was working is not pushed
at all: a person never gets a stale tip.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from oo.vapid import generate_keys
from tests.faults.conftest import FaultWorker
from tests.helpers import consume_until, http_get, produce
from tests.integration.test_notify import PUSH_PORT, push_service, tips_received  # noqa: F401
from topics.catalog import SIGNALS, TIPS_DECIDED
from topics.codec import encode
from topics.records import MoodLogged, Tip, TipDecided
from tests.conftest import port

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def decision(user: str, title: str, expires_in: timedelta) -> TipDecided:
    now = datetime.now(UTC)
    decision_id = uuid.uuid4().hex
    return TipDecided(
        event_id=decision_id, user_id=user, occurred_at=now, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.5, reason="test",
        tip=Tip(id=f"advice:{decision_id[:6]}", kind="advice", title=title, source="catalogue"),
        context_snapshot={"moment": "app_opened"}, expires_at=now + expires_in)


async def test_after_a_stop_the_lag_drains_and_no_expired_tip_is_pushed(
        topics, settings, postgres, push_service, tmp_path, capsys):  # noqa: F811
    bootstrap = topics
    client, ca_file = push_service
    key = tmp_path / "vapid.pem"
    public_key = generate_keys(key)
    db = await asyncpg.connect(postgres)
    user = str(await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id"))
    sub = client.subscribe(public_key)
    await db.execute("INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) "
                     "VALUES ($1, $2, $3, $4)", uuid.UUID(user), sub["endpoint"],
                     sub["keys"]["p256dh"], sub["keys"]["auth"])
    device = client.subscription_id(sub["endpoint"])
    worker = FaultWorker(settings, f"oo-fault-{uuid.uuid4().hex[:8]}", bootstrap, port(26320),
                         env={"OO_PUSH_CA_FILE": str(ca_file),
                              "OO_PUSH_EXTRA_HOSTS": f"127.0.0.1:{PUSH_PORT}",
                              "OO_VAPID_PRIVATE_KEY": str(key)})
    worker.start()
    people = [str(uuid.uuid4()) for _ in range(50)]
    try:
        worker.stop()  # nobody works from here on
        stale = decision(user, "Stale by the time anyone reads it", timedelta(seconds=2))
        await produce(bootstrap, TIPS_DECIDED.name, [(user.encode(), encode(stale))])
        now = datetime.now(UTC)
        backlog = [(u.encode(), encode(MoodLogged(
            event_id=f"{u}-{n}", user_id=u, occurred_at=now + timedelta(seconds=n),
            source="test", score=0))) for n in range(20) for u in people]
        await produce(bootstrap, SIGNALS["mood"].name, backlog)
        fresh = decision(user, "Still true", timedelta(hours=4))
        await asyncio.sleep(3)  # the stale tip expires while the worker is stopped
        await produce(bootstrap, TIPS_DECIDED.name, [(user.encode(), encode(fresh))])

        worker.start()
        started = time.monotonic()
        keys = {u.encode() for u in people}

        def drained(kept: list) -> bool:
            latest = {r.key: r.value for r in kept}
            return all(latest.get(k) is not None and
                       json.loads(latest[k])["signals_by_domain"].get("mood") == 20 for k in keys)

        await consume_until(bootstrap, f"{worker.app_id}-features-changelog", drained,
                            keep=lambda r: r.key in keys, timeout=120)
        deadline = time.monotonic() + 60
        while not tips_received(client, device):
            assert time.monotonic() < deadline, "the fresh tip was never pushed"
            await asyncio.sleep(0.3)
        drained_s = time.monotonic() - started
        deadline = time.monotonic() + 30
        while (lag := worker.metric("oo_consumer_lag")) != 0:  # the worker sees it drained too
            assert time.monotonic() < deadline, f"consumer lag still {lag}"
            await asyncio.sleep(0.5)
        lines = http_get(f"{worker.base}/metrics")[1].decode()
        assert 'oo_consumer_lag{topic="oo.signals.mood"' in lines  # measured, not absent
        await asyncio.sleep(2)
        pushed = [t["decision_id"] for t in tips_received(client, device)]
        expired = worker.metric('oo_pushes_total{status="expired"}')
        status = await db.fetchval("SELECT status FROM tip_instances WHERE decision_id = $1",
                                   stale.decision_id)
    finally:
        worker.stop()
        await db.execute("DELETE FROM users WHERE id = $1", uuid.UUID(user))
        await db.close()
    with capsys.disabled():
        print(f"\nlag catch-up: {len(backlog)} signals and 2 decisions waited; drained in "
              f"{drained_s:.1f} s after the restart; pushed {len(pushed)} (the fresh one), "
              f"expired and not pushed: {expired}")
    assert pushed == [fresh.decision_id], f"pushed {pushed}"
    assert expired >= 1 and status in ("withdrawn", "pending")
