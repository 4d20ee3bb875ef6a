"""A worker SIGKILLed mid-batch and restarted pushes each tip exactly once per device.

240 decisions (48 people, 5 decisions each, one to two devices each) go to
oo.tips.decided; a real `oo worker` delivers them through a push service
embedded in this test (it decrypts, and counts what it accepted). The worker
is killed with SIGKILL twice while it is delivering and restarted under the
same app id, so it resumes its consumer group from the last committed offset
and sees again every decision it had handled since (commits are 10 s apart).

Where each kill lands is chosen, not left to chance. The push service is told
to leave the second tip push to one device of a person hanging (received, not
accepted); the test kills the worker once that push hangs and the same tip's
push to the person's other device is accepted and recorded (or 3 s have
passed). At that moment:
  * one push of a decision was accepted and recorded `sent`: sending it again
    after the restart is a duplicate;
  * one push was never accepted: not sending it after the restart is a loss.
A kill at a random instant could also land after the push service accepted a
push and before the worker heard the 201. No sender can tell that push from
one that never arrived (Web Push has no idempotency key), so such a kill
cannot be held to exactly once; this test does not aim one there.

Only the newest tip per person is meant to stay shown: a newer decision
withdraws the older one (a `withdraw` payload under the same Topic). So tips
are counted by `type == "tip"` per decision, and withdrawals separately.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from oo.pushservice import PushService
from oo.vapid import generate_keys
from tests.helpers import produce
from tests.integration.conftest import Worker
from topics.admin import ensure_topics
from topics.catalog import TIPS_DECIDED
from topics.codec import encode
from topics.records import Tip, TipDecided

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PEOPLE = 48  # every third with one device, the others with two: 80 devices
DECISIONS_EACH = 5  # 240 decisions, one person's in a row (kept in order within a partition)
KILL_AT = (0.3, 0.65)  # where in the topic the interrupted people are (fraction of people)
HANG_S = 30.0  # how long an interrupted push hangs: far past the moment of the kill
SIBLING_WAIT_S = 3.0  # how long a correct worker may take to record the other device's push
MAX_HANG_AGE_S = 8.0  # the worker gives up on a push after 10 s and retries; kill before
PHASE_TIMEOUT_S = 45.0
FINISH_TIMEOUT_S = 30.0  # after the last restart: ~10 s to take the partitions over, then seconds
REDELIVERED = "oo_notify_redelivered_total"


@dataclass
class Person:
    user_id: uuid.UUID
    devices: list[tuple[str, uuid.UUID]]  # (push service subscription id, push_subscriptions.id)
    decisions: list[TipDecided]


@dataclass
class Kill:
    """What the test saw when it killed the worker."""

    person: Person
    tips_arrived: int
    sibling_recorded: bool
    redelivered: int  # decisions this worker had found already recorded when it was killed
    seconds_after_start: float


@dataclass
class Run:
    people: list[Person]
    kills: list[Kill]
    redelivered: int
    tips: dict[tuple[str, str], int]  # (decision id, device) -> tip pushes accepted
    withdrawals: dict[tuple[str, str], int]  # (decision id, device) -> withdraw pushes accepted
    unexpected: list[str]  # payloads that belong to no decision of this run
    deliveries: Counter[str] = field(default_factory=Counter)  # push_deliveries.status
    tip_status: dict[str, str] = field(default_factory=dict)  # decision id -> tip_instances.status
    seconds: float = 0.0


def decision(user_id: uuid.UUID, n: int, at: datetime) -> TipDecided:
    decision_id = uuid.uuid4().hex
    return TipDecided(
        event_id=decision_id, user_id=str(user_id), occurred_at=at, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.25, reason="app_opened: test",
        tip=Tip(id=f"advice:crash-{n}", kind="advice", title=f"Tip {n}", body="Now.",
                source="catalogue"),
        context_snapshot={"moment": "app_opened"}, expires_at=at + timedelta(hours=4))


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float, what: str,
                     *, required: bool = True) -> Any:
    """Poll `check` until it is truthy; on timeout fail saying `what` (or return it, falsy)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            assert result or not required, f"timed out after {timeout:.0f} s waiting for {what}"
            return result
        await asyncio.sleep(0.05)


def payloads(service: PushService, device: str, kind: str) -> list[str]:
    """Decision ids of the accepted pushes of `kind` ("tip" or "withdraw") to `device`."""
    found = []
    for message in service.messages(device):
        payload = json.loads(message.text or "{}")
        if payload.get("type") == kind:
            found.append(payload["decision_id"])
    return found


def tips_accepted(service: PushService, people: list[Person]) -> int:
    return sum(len(payloads(service, device, "tip")) for p in people for device, _ in p.devices)


async def make_people(db: asyncpg.Connection, service: PushService, public_key: str) -> list[Person]:
    start = datetime.now(UTC) - timedelta(minutes=30)
    people = []
    for i in range(PEOPLE):
        user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
        devices = []
        for _ in range(1 if i % 3 == 0 else 2):
            sub = service.subscribe(public_key).to_json()
            keys: dict[str, str] = sub["keys"]  # type: ignore[assignment]
            sub_id = await db.fetchval(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) "
                "VALUES ($1, $2, $3, $4) RETURNING id",
                user_id, sub["endpoint"], keys["p256dh"], keys["auth"])
            devices.append((str(sub["endpoint"]).rsplit("/", 1)[-1], sub_id))
        decisions = [decision(user_id, n, start + timedelta(minutes=n))
                     for n in range(DECISIONS_EACH)]
        people.append(Person(user_id, devices, decisions))
    return people


def interrupted_people(people: list[Person]) -> list[Person]:
    """The first person with two devices at or after each KILL_AT position."""
    chosen = []
    for at in KILL_AT:
        chosen.append(next(p for p in people[int(at * PEOPLE):] if len(p.devices) == 2))
    return chosen


async def hang_second_tip(service: PushService, device: str) -> None:
    """Once the device has its first tip, make its next push (the second tip) hang.

    The push service wakes this waiter as it accepts the first tip, long before
    the worker has recorded it and moved on to the person's next decision.
    """
    await service.wait_for_messages(device, 1, timeout=3 * PHASE_TIMEOUT_S)
    service.hang_next(device, seconds=HANG_S)


def hung_at(service: PushService, device: str) -> float | None:
    """When a push to `device` was left hanging (status 0), if one was."""
    return next((a.at for a in service.attempts(device) if a.status == 0), None)


@pytest.fixture(scope="module")
async def crash_run(kafka, postgres, settings, tmp_path_factory):
    """Deliver 240 decisions through a worker killed twice mid-batch; count what arrived."""
    began = time.monotonic()
    folder = tmp_path_factory.mktemp("notify-crash")
    key = folder / "vapid.pem"
    public_key = generate_keys(key)
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    db = await asyncpg.connect(postgres)
    async with PushService.running("127.0.0.1", 0, folder / "ca") as service:
        people = await make_people(db, service, public_key)
        targets = interrupted_people(people)
        worker = Worker(settings, f"oo-test-crash-{uuid.uuid4().hex[:8]}", env={
            "OO_PUSH_CA_FILE": str(service.ca_file),
            "OO_PUSH_EXTRA_HOSTS": urlsplit(service.base_url).netloc,
            "OO_VAPID_PRIVATE_KEY": str(key)})
        hangs = [asyncio.create_task(hang_second_tip(service, t.devices[0][0])) for t in targets]
        try:
            await asyncio.to_thread(worker.start)
            await produce(kafka, TIPS_DECIDED.name,
                          [(d.user_id.encode(), encode(d)) for p in people for d in p.decisions])
            kills = await kill_at_each_hang(service, db, worker, people, targets, began)
            # Not required here: a loss then shows in the counts the test asserts on.
            if not await wait_until(lambda: finished(service, db, people), FINISH_TIMEOUT_S,
                                    "", required=False):
                print(f"\nnot every tip arrived or was recorded within {FINISH_TIMEOUT_S:.0f} s "
                      f"of the last restart; worker logs: {worker.log.parent}/worker-"
                      f"{worker.app_id}-*.log")
            await settled(service, people)
            redelivered = sum(k.redelivered for k in kills)
            redelivered += await asyncio.to_thread(worker.metric, REDELIVERED)
            return await count(service, db, people, kills, redelivered, time.monotonic() - began)
        finally:
            for task in hangs:
                task.cancel()
            await asyncio.gather(*hangs, return_exceptions=True)
            await asyncio.to_thread(worker.stop)
            await db.execute("DELETE FROM users WHERE id = ANY($1::uuid[])",
                             [p.user_id for p in people])
            await db.close()


async def kill_at_each_hang(service: PushService, db: asyncpg.Connection, worker: Worker,
                            people: list[Person], targets: list[Person],
                            began: float) -> list[Kill]:
    """SIGKILL the worker at each hanging second tip, then start it again."""
    kills: list[Kill] = []
    waiting = list(targets)
    while waiting:
        async def hanging() -> Person | None:
            return next((t for t in waiting if hung_at(service, t.devices[0][0]) is not None), None)

        target = await wait_until(hanging, PHASE_TIMEOUT_S,
                                  f"a hanging second tip push ({len(kills)} kills so far)")
        waiting.remove(target)
        kills.append(await kill_during_second_tip(service, db, worker, people, target, began))
        await asyncio.to_thread(worker.start)
    return kills


async def kill_during_second_tip(service: PushService, db: asyncpg.Connection, worker: Worker,
                                 people: list[Person], target: Person, began: float) -> Kill:
    """Kill the worker once the target's other device has its second tip recorded (or
    SIBLING_WAIT_S passed), checking that the kill lands where this test aims it."""
    (device, device_sub), (_, sibling_sub) = target.devices
    second = target.decisions[1].decision_id

    async def delivery(subscription: uuid.UUID) -> str | None:
        return await db.fetchval(
            "SELECT status FROM push_deliveries WHERE decision_id = $1 AND subscription_id = $2",
            second, subscription)

    async def sibling_sent() -> bool:
        return await delivery(sibling_sub) == "sent"

    sibling_recorded = await wait_until(sibling_sent, SIBLING_WAIT_S, "", required=False)
    assert payloads(service, device, "tip") == [target.decisions[0].decision_id], \
        "the hang did not land on the second tip push of the device"
    assert await delivery(device_sub) == "pending", "the hanging push is not pending"
    hang_age = time.time() - (hung_at(service, device) or 0.0)
    assert hang_age < MAX_HANG_AGE_S, \
        f"the hang was noticed {hang_age:.1f} s late; the worker may have retried the push"
    total = sum(len(p.devices) for p in people) * DECISIONS_EACH
    arrived = tips_accepted(service, people)
    assert 0 < arrived < total, f"not killed mid-batch: {arrived} of {total} tips had arrived"
    redelivered = await asyncio.to_thread(worker.metric, REDELIVERED)
    await asyncio.to_thread(worker.stop, signal.SIGKILL)
    return Kill(target, arrived, bool(sibling_recorded), redelivered, time.monotonic() - began)


async def finished(service: PushService, db: asyncpg.Connection, people: list[Person]) -> bool:
    """Every tip accepted on every device, every delivery recorded `sent`."""
    if any(not set(payloads(service, device, "tip")) >= {d.decision_id for d in p.decisions}
           for p in people for device, _ in p.devices):
        return False
    ids = [d.decision_id for p in people for d in p.decisions]
    unsent = await db.fetchval(
        "SELECT count(*) FROM push_deliveries WHERE decision_id = ANY($1) AND status <> 'sent'", ids)
    recorded = await db.fetchval(
        "SELECT count(*) FROM tip_instances WHERE decision_id = ANY($1)", ids)
    return unsent == 0 and recorded == len(ids)


async def settled(service: PushService, people: list[Person], quiet_s: float = 1.5) -> None:
    """Wait until the push service has accepted nothing new for `quiet_s` (late duplicates,
    the last withdrawals)."""
    devices = [device for p in people for device, _ in p.devices]

    def accepted() -> int:
        return sum(len(service.messages(d)) for d in devices)

    seen, quiet_since = accepted(), time.monotonic()
    deadline = quiet_since + PHASE_TIMEOUT_S
    while time.monotonic() - quiet_since < quiet_s:
        assert time.monotonic() < deadline, "the push service never went quiet"
        await asyncio.sleep(0.1)
        now = accepted()
        if now != seen:
            seen, quiet_since = now, time.monotonic()


async def count(service: PushService, db: asyncpg.Connection, people: list[Person],
                kills: list[Kill], redelivered: int, seconds: float) -> Run:
    ids = {d.decision_id for p in people for d in p.decisions}
    tips: dict[tuple[str, str], int] = {}
    withdrawals: dict[tuple[str, str], int] = {}
    unexpected: list[str] = []
    for p in people:
        for device, _ in p.devices:
            got_tips = Counter(payloads(service, device, "tip"))
            got_withdrawals = Counter(payloads(service, device, "withdraw"))
            for d in p.decisions:
                tips[(d.decision_id, device)] = got_tips.pop(d.decision_id, 0)
            for d in p.decisions[:-1]:  # every tip but the newest is replaced
                withdrawals[(d.decision_id, device)] = got_withdrawals.pop(d.decision_id, 0)
            unexpected += [f"tip {i} on {device}" for i in got_tips.elements()]
            unexpected += [f"withdraw {i} on {device}" for i in got_withdrawals.elements()]
    rows = await db.fetch("SELECT status FROM push_deliveries WHERE decision_id = ANY($1)", list(ids))
    statuses = await db.fetch(
        "SELECT decision_id, status FROM tip_instances WHERE decision_id = ANY($1)", list(ids))
    run = Run(people, kills, redelivered, tips, withdrawals, unexpected,
              Counter(r["status"] for r in rows),
              {r["decision_id"]: r["status"] for r in statuses}, seconds)
    report(run)
    return run


def report(run: Run) -> None:
    devices = sum(len(p.devices) for p in run.people)
    total = sum(run.tips.values())
    print(f"\nnotify crash run: {len(run.people)} people, {devices} devices, "
          f"{len(run.people) * DECISIONS_EACH} decisions, {len(run.tips)} (decision, device) pairs; "
          f"{run.seconds:.1f} s")
    for n, kill in enumerate(run.kills, 1):
        print(f"  kill {n} (SIGKILL) at {kill.seconds_after_start:.1f} s: {kill.tips_arrived} of "
              f"{len(run.tips)} tips had arrived; the other device's push of the interrupted tip "
              f"was {'recorded' if kill.sibling_recorded else 'NOT recorded'} before the kill")
    print(f"  decisions redelivered after the restarts (already recorded): {run.redelivered}")
    print(f"  tip pushes accepted: {total}; lost {sum(1 for n in run.tips.values() if n == 0)}, "
          f"duplicated {sum(n - 1 for n in run.tips.values() if n > 1)}")
    print(f"  withdraw pushes accepted: {sum(run.withdrawals.values())} of {len(run.withdrawals)}; "
          f"lost {sum(1 for n in run.withdrawals.values() if n == 0)}, "
          f"duplicated {sum(n - 1 for n in run.withdrawals.values() if n > 1)}")
    print(f"  push_deliveries: {dict(run.deliveries)}; "
          f"tip_instances: {dict(Counter(run.tip_status.values()))}")


async def test_a_worker_killed_mid_batch_pushes_each_tip_exactly_once_per_device(crash_run: Run):
    run = crash_run
    assert len(run.kills) >= 2
    lost = sorted(pair for pair, n in run.tips.items() if n == 0)
    duplicated = sorted((pair, n) for pair, n in run.tips.items() if n > 1)
    assert not lost, f"{len(lost)} (decision, device) pairs got no tip push: {lost[:5]}"
    assert not duplicated, f"{len(duplicated)} pairs got the tip more than once: {duplicated[:5]}"
    assert not run.unexpected, f"pushes of no decision of this run: {run.unexpected[:5]}"
    assert run.deliveries == Counter(sent=len(run.tips))
    for person in run.people:
        *older, newest = person.decisions
        assert run.tip_status[newest.decision_id] == "delivered"
        assert all(run.tip_status[d.decision_id] == "withdrawn" for d in older)


async def test_each_replaced_tip_is_withdrawn_once_on_every_device_despite_the_kills(crash_run: Run):
    lost = sorted(pair for pair, n in crash_run.withdrawals.items() if n == 0)
    duplicated = sorted(pair for pair, n in crash_run.withdrawals.items() if n > 1)
    assert not lost, f"{len(lost)} replaced tips were never withdrawn on a device: {lost[:5]}"
    assert not duplicated, f"{len(duplicated)} withdrawals were pushed twice: {duplicated[:5]}"
