"""The notifier on the real broker, PostgreSQL and a local push service that decrypts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from oo.pushservice.client import ControlClient
from oo.vapid import generate_keys
from tests.conftest import port
from tests.helpers import ROOT, produce, stop_process
from tests.integration.conftest import ARTIFACTS, Worker
from topics.admin import ensure_topics
from topics.catalog import FEEDBACK, SIGNALS, TIPS_DECIDED
from topics.codec import encode
from topics.records import (
    ContextObserved,
    FeedbackGiven,
    LifecycleChanged,
    TaskChanged,
    Tip,
    TipDecided,
)

pytestmark = pytest.mark.integration
PUSH_PORT = port(28443)


@pytest.fixture(scope="module")
def push_service(tmp_path_factory):
    """`python -m oo.pushservice` over HTTPS with its own test CA."""
    import subprocess

    ca_dir = tmp_path_factory.mktemp("push-ca")
    log = ARTIFACTS / "pushservice.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "oo.pushservice", "--port", str(PUSH_PORT), "--ca-dir",
             str(ca_dir)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = ControlClient(f"https://127.0.0.1:{PUSH_PORT}", ca_dir / "ca.pem")
    try:
        client.wait_ready()
        yield client, ca_dir / "ca.pem"
    finally:
        stop_process(process)


@pytest.fixture
async def notifying(request, kafka, postgres, settings, push_service, tmp_path):
    """A worker that pushes through the local push service, a person with two devices.

    Parametrized indirectly with "split": an engine worker and a notify worker instead
    (`oo worker --role engine` / `--role notify`), as a deployment that splits them runs.
    """
    client, ca_file = push_service
    key = tmp_path / "vapid.pem"
    public_key = generate_keys(key)
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    db = await asyncpg.connect(postgres)
    user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    devices = []
    for _ in range(2):
        sub = client.subscribe(public_key)
        sub_id = await db.fetchval(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) VALUES ($1,$2,$3,$4) "
            "RETURNING id", user_id, sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"])
        devices.append((client.subscription_id(sub["endpoint"]), sub_id))
    env = {"OO_PUSH_CA_FILE": str(ca_file), "OO_PUSH_EXTRA_HOSTS": f"127.0.0.1:{PUSH_PORT}",
           "OO_VAPID_PRIVATE_KEY": str(key)}
    app_id = f"oo-test-{uuid.uuid4().hex[:8]}"
    if getattr(request, "param", "one") == "split":
        workers = [Worker(settings, app_id, env=env, role="engine"),
                   Worker(settings, app_id, role="notify",
                          env={**env, "OO_WORKER_WEB_PORT": str(port(26067))})]
    else:
        workers = [Worker(settings, app_id, env=env)]
    for worker in workers:
        worker.start()
    try:
        yield {"client": client, "db": db, "user": str(user_id), "devices": devices,
               "worker": workers[-1]}
    finally:
        for worker in workers:
            worker.stop()
        await db.execute("DELETE FROM users WHERE id = $1", user_id)
        await db.close()


def decision(user: str, title: str) -> TipDecided:
    now = datetime.now(UTC)
    decision_id = uuid.uuid4().hex
    return TipDecided(
        event_id=decision_id, user_id=user, occurred_at=now, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.25, reason="app_opened: test",
        tip=Tip(id="advice:water", kind="advice", title=title, body="A glass, now.",
                source="catalogue"),
        context_snapshot={"moment": "app_opened"}, expires_at=now + timedelta(hours=4))


async def wait_for(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


def tips_received(client: ControlClient, device: str) -> list[dict]:
    return [json.loads(m["text"]) for m in client.messages(device)
            if json.loads(m["text"]).get("type") == "tip"]


async def send(kafka: str, record: TipDecided) -> None:
    await produce(kafka, TIPS_DECIDED.name, [(record.user_id.encode(), encode(record))])


async def test_a_decision_reaches_both_devices_and_decrypts_to_the_tip(kafka, notifying):
    client, db, user = notifying["client"], notifying["db"], notifying["user"]
    tip = decision(user, "Drink a glass of water")
    await send(kafka, tip)

    async def both() -> bool:
        return all(tips_received(client, d) for d, _ in notifying["devices"])

    await wait_for(both, what="the push on both devices")
    for device, _ in notifying["devices"]:
        (payload,) = tips_received(client, device)
        assert payload["title"] == "Drink a glass of water" and payload["decision_id"] == tip.decision_id
        assert payload["kind"] == "advice" and payload["body"] == "A glass, now."
    row = await db.fetchrow("SELECT status, context_snapshot FROM tip_instances WHERE decision_id=$1",
                            tip.decision_id)
    assert row["status"] == "delivered" and json.loads(row["context_snapshot"]) == {"moment": "app_opened"}
    sent = await db.fetchval("SELECT count(*) FROM push_deliveries WHERE decision_id=$1 AND status='sent'",
                             tip.decision_id)
    assert sent == 2

    # The same decision again (a redelivery): nothing is pushed twice.
    await send(kafka, tip)
    await asyncio.sleep(3)
    assert all(len(tips_received(client, d)) == 1 for d, _ in notifying["devices"])


async def test_a_gone_subscription_is_removed_and_429_is_retried_after_retry_after(kafka, notifying):
    client, db = notifying["client"], notifying["db"]
    (first, _), (second, second_id) = notifying["devices"]
    client.fail_next(second, 410)
    client.fail_next(first, 429, retry_after=1)
    started = time.monotonic()
    await send(kafka, decision(notifying["user"], "Stretch for a minute"))

    async def retried() -> bool:
        return bool(tips_received(client, first))

    await wait_for(retried, what="the 429'd push to be retried")
    assert time.monotonic() - started >= 1.0  # waited for Retry-After
    statuses = [a["status"] for a in client.attempts(first)]
    assert statuses[-2:] == [429, 201]

    async def removed() -> bool:
        return await db.fetchval("SELECT count(*) FROM push_subscriptions WHERE id=$1", second_id) == 0

    await wait_for(removed, what="the 410 subscription to be removed")


def withdrawals_received(client: ControlClient, device: str) -> list[dict]:
    return [json.loads(m["text"]) for m in client.messages(device)
            if json.loads(m["text"]).get("type") == "withdraw"]


async def test_an_answer_or_an_expiry_closes_the_tip_on_every_device_once(kafka, notifying):
    client, db, user = notifying["client"], notifying["db"], notifying["user"]
    answered, ignored = decision(user, "Water"), decision(user, "Walk")
    for tip in (answered, ignored):
        await send(kafka, tip)

    async def both_pushed() -> bool:
        return all(len(tips_received(client, d)) == 2 for d, _ in notifying["devices"])

    await wait_for(both_pushed, what="both tips on both devices")
    # The second tip replaced the first: each device already closed the first one.
    base = {d: len(withdrawals_received(client, d)) for d, _ in notifying["devices"]}
    assert set(base.values()) == {1}

    def feedback(tip: TipDecided, reaction: str, event_id: str) -> FeedbackGiven:
        return FeedbackGiven(event_id=event_id, user_id=user, occurred_at=datetime.now(UTC),
                             source="test", decision_id=tip.decision_id, tip_id=tip.tip.id,
                             reaction=reaction)

    expired = feedback(ignored, "ignored", f"ignored-{ignored.decision_id}")
    seen = feedback(ignored, "seen", uuid.uuid4().hex)
    done_again = feedback(answered, "done", uuid.uuid4().hex)  # already withdrawn: no-op
    await produce(kafka, FEEDBACK.name, [(user.encode(), encode(r))
                                         for r in (seen, expired, expired, done_again)])

    async def closed() -> bool:
        return all(len(withdrawals_received(client, d)) == base[d] + 1
                   for d, _ in notifying["devices"])

    await wait_for(closed, what="the expired tip to be closed on both devices")
    await asyncio.sleep(3)  # a redelivered or repeated event must not close it twice
    for device, _ in notifying["devices"]:
        last = withdrawals_received(client, device)
        assert len(last) == base[device] + 1 and last[-1]["decision_id"] == ignored.decision_id
    assert await db.fetchval("SELECT status FROM tip_instances WHERE decision_id=$1",
                             ignored.decision_id) == "ignored"


@pytest.mark.parametrize("notifying", ["one", "split"], indirect=True)
async def test_a_todo_completed_at_its_source_closes_its_tip_everywhere(kafka, notifying):
    client, db, user = notifying["client"], notifying["db"], notifying["user"]
    key = user.encode()
    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    account = LifecycleChanged(
        event_id=f"{user}-a", user_id=user, occurred_at=now - timedelta(minutes=5), source="test",
        change="user_created", time_zone="UTC", quiet_start_minute=(minute + 600) % 1440,
        quiet_end_minute=(minute + 660) % 1440, daily_budget=5, kinds=["todo"])
    task = TaskChanged(event_id=f"{user}-t1", user_id=user, occurred_at=now - timedelta(minutes=4),
                       source="todoist", change="created", task_id="t-1", title="Send the report",
                       due_at=now + timedelta(hours=3))
    await produce(kafka, SIGNALS["lifecycle"].name, [(key, encode(account))])
    await produce(kafka, SIGNALS["tasks"].name, [(key, encode(task))])
    await asyncio.sleep(2)  # both folded before the moment
    opened = ContextObserved(event_id=f"{user}-o", user_id=user, occurred_at=now, source="test",
                             kind="app_opened")
    await produce(kafka, SIGNALS["context"].name, [(key, encode(opened))])

    async def pushed() -> list[dict]:
        return [t for d, _ in notifying["devices"] for t in tips_received(client, d)]

    tips = await wait_for(pushed, what="the todo tip on the devices")
    decision_id = tips[0]["decision_id"]
    assert tips[0]["tip_id"] == "todo:t-1"
    done = TaskChanged(event_id=f"{user}-t2", user_id=user, occurred_at=datetime.now(UTC),
                       source="todoist", change="completed", task_id="t-1")
    await produce(kafka, SIGNALS["tasks"].name, [(key, encode(done))])

    async def closed() -> bool:
        return all(any(w["decision_id"] == decision_id for w in withdrawals_received(client, d))
                   for d, _ in notifying["devices"])

    await wait_for(closed, what="the tip's notification to be closed on both devices")
    assert await db.fetchval("SELECT status FROM tip_instances WHERE decision_id=$1",
                             decision_id) == "done"
