"""PushSender against the local push service (oo.pushservice), which really checks
VAPID and decrypts: delivery, headers, retries, shrinking, gone, the breaker,
timeouts, concurrency and the connect-time address guard."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.endpoints import (
    EndpointPolicy,
    PushSubscription,
    guarded_connector,
)
from adapters.webpush import PushSender, SenderSettings, VapidSigner, load_vapid_key
from domain.push import (
    BreakerConfig,
    Notification,
    PushPlan,
    RetryPolicy,
    plan_tip,
    plan_withdrawal,
    smaller_budget,
)
from oo.pushservice import PushService
from oo.vapid import generate_keys, load_vapid, public_key_b64

pytestmark = pytest.mark.integration

SUBJECT = "mailto:ops@oo.example"


@dataclass(frozen=True)
class FakeTip:
    id: str = "t-1"
    kind: str = "todo"
    title: str = "Pay rent"
    body: str = "Before Friday"
    deep_link: str | None = "/tips/t-1"


@dataclass(frozen=True)
class FakeDecision:
    decision_id: str = "d-1"
    user_id: str = "u-1"
    moment: str = "todo_due_soon"
    expires_at: datetime | None = None
    tip: FakeTip = field(default_factory=FakeTip)


def tip_plan(**tip: str) -> PushPlan:
    plan = plan_tip(FakeDecision(tip=FakeTip(**tip)), datetime.now(UTC))
    assert isinstance(plan, PushPlan)
    return plan


class Harness:
    """A sender wired as the notifier wires it, with recorded sleeps and a settable clock."""

    def __init__(self, stack: AsyncExitStack, services: list[PushService], *,
                 key: ec.EllipticCurvePrivateKey, settings: SenderSettings,
                 policy: EndpointPolicy | None = None, resolver: AbstractResolver | None = None,
                 signer: VapidSigner | None = None) -> None:
        self.stack, self.services, self.key = stack, services, key
        self.sleeps: list[float] = []
        self.monotonic = 1000.0
        ports = [urlsplit(s.base_url).port for s in services]
        self.policy = policy or EndpointPolicy.of([f"127.0.0.1:{p}" for p in ports],
                                                  refuse_private_addresses=False)
        self.settings, self.resolver, self.signer = settings, resolver, signer

    async def sender(self) -> PushSender:
        ssl = self.services[0].certificates.client_ssl_context()  # type: ignore[union-attr]
        session = await self.stack.enter_async_context(aiohttp.ClientSession(
            connector=guarded_connector(self.policy, ssl=ssl, resolver=self.resolver)))

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        return PushSender(session, vapid_key=self.signer or self.key, vapid_subject=SUBJECT,
                          policy=self.policy, settings=self.settings, sleep=sleep,
                          jitter=lambda: 0.5, clock=lambda: self.monotonic)

    def subscribe(self, service: PushService | None = None, key: ec.EllipticCurvePrivateKey | None = None):
        public = public_key_b64((key or self.key).public_key())
        return (service or self.services[0]).subscribe(application_server_key=public)


FAST = SenderSettings(timeout_s=2.0, retry=RetryPolicy(max_attempts=4, base_s=0.5, cap_s=4.0))


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("push-ca")


@pytest.fixture(scope="module")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def push(ca_dir: Path) -> AsyncIterator[PushService]:
    async with PushService.running("127.0.0.1", 0, ca_dir) as service:
        yield service


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


@pytest.fixture
def harness(stack, push, vapid_key) -> Harness:
    return Harness(stack, [push], key=vapid_key, settings=FAST)


# --- delivery -----------------------------------------------------------------------------------


async def test_a_tip_reaches_the_browser_decrypted_with_its_headers(harness, push):
    sender, sub, plan = await harness.sender(), harness.subscribe(), tip_plan()
    outcome = await sender.send(sub, plan.payload, topic=plan.topic(sub.endpoint),
                                urgency=plan.urgency, ttl=plan.ttl_s)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("delivered", 1, 201)
    [message] = push.messages(sub.id)
    assert json.loads(message.payload) == {
        "v": 1, "type": "tip", "decision_id": "d-1", "tip_id": "t-1", "kind": "todo",
        "title": "Pay rent", "body": "Before Friday", "url": "/tips/t-1"}
    assert (message.ttl, message.urgency, message.topic) == (4 * 3600, "high", plan.topic(sub.endpoint))
    assert message.vapid_subject == SUBJECT and harness.sleeps == []


async def test_the_largest_tip_still_fits_the_push_services_4096_byte_limit(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    plan = tip_plan(title="😀" * 500, body="👨‍👩‍👧" * 400, deep_link="/" + "é" * 999)
    outcome = await sender.send(sub, plan.payload, ttl=60)
    assert outcome.status == "delivered" and outcome.attempts == 1
    shown = json.loads(push.messages(sub.id)[0].payload)
    assert shown["title"] == "😀" * 500 and shown["body"].endswith("…")


async def test_vapid_is_signed_once_per_audience_not_per_push(stack, push, vapid_key):
    offset = [0.0]
    signer = VapidSigner(vapid_key, SUBJECT, clock=lambda: time.time() + offset[0])
    harness = Harness(stack, [push], key=vapid_key, settings=FAST, signer=signer)
    sender, sub = await harness.sender(), harness.subscribe()
    signed_at_start = signer.signed
    for _ in range(5):
        assert (await sender.send(sub, b'{"n":1}', ttl=60)).status == "delivered"
    assert signer.signed - signed_at_start == 1
    offset[0] = 3601.0  # an hour later: a fresh token, which the push service accepts too
    assert (await sender.send(sub, b'{"n":2}', ttl=60)).status == "delivered"
    assert signer.signed - signed_at_start == 2


async def test_send_many_reaches_every_subscription_and_reports_each(harness, push):
    sender = await harness.sender()
    subs = [harness.subscribe() for _ in range(3)]
    push.unsubscribe(subs[1].id)
    plan = tip_plan()
    outcomes = await sender.send_many(subs, plan)
    assert [o.status for o in outcomes] == ["delivered", "gone", "delivered"]
    topics = {push.messages(s.id)[0].topic for s in (subs[0], subs[2])}
    assert len(topics) == 2  # one topic per subscription


async def test_a_withdrawal_replaces_the_tip_still_waiting_for_an_offline_browser(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.set_online(sub.id, False)
    tip, withdraw = tip_plan(), plan_withdrawal("u-1", "d-1")
    await sender.send_many([sub], tip)
    await sender.send_many([sub], withdraw)
    delivered = push.set_online(sub.id, True)
    assert [json.loads(m.payload)["type"] for m in delivered] == ["withdraw"]


# --- what the push service says ------------------------------------------------------------------


async def test_an_unsubscribed_browser_is_reported_gone(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.unsubscribe(sub.id)
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("gone", 410, 1)


async def test_an_unknown_subscription_is_reported_gone(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    ghost = PushSubscription(f"{push.base_url}/push/never-was", sub.p256dh, sub.auth)
    outcome = await sender.send(ghost, b"{}", ttl=60)
    assert (outcome.status, outcome.http_status) == ("gone", 404)


async def test_a_413_makes_the_sender_shrink_the_payload_and_retry(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 413)
    note = Notification("d-1", "t-1", "todo", "title", "😀" * 2000)
    outcome = await sender.send(sub, note, ttl=60)
    assert (outcome.status, outcome.attempts) == ("delivered", 2)
    assert [a.status for a in push.attempts(sub.id)] == [413, 201]
    assert len(push.messages(sub.id)[0].payload) <= smaller_budget(len(note.render()))
    assert harness.sleeps == []  # shrinking needs no wait


async def test_ready_made_bytes_cannot_shrink_so_a_413_fails(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 413)
    outcome = await sender.send(sub, b'{"x":"' + b"a" * 1000 + b'"}', ttl=60)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 413)
    assert "cannot be shrunk" in outcome.reason


async def test_a_push_service_outage_is_retried_with_backoff_then_delivered(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 503, times=2)
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.attempts) == ("delivered", 3)
    assert harness.sleeps == [0.25, 0.5]  # jitter 0.5 of 0.5 s, then of 1 s


async def test_a_rate_limit_waits_for_retry_after(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 429, retry_after=7)
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.attempts, harness.sleeps) == ("delivered", 2, [7.0])


async def test_a_rate_limit_beyond_the_bound_fails_for_a_later_retry(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 429, retry_after=3600)
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.retryable, harness.sleeps) == ("failed", True, [])


async def test_a_persistent_failure_gives_up_after_max_attempts(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 500, times=10)
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.attempts, outcome.retryable) == ("failed", 4, True)
    assert "gave up after 4 attempts" in outcome.reason
    assert len(push.attempts(sub.id)) == 4 and len(harness.sleeps) == 3


async def test_credentials_the_push_service_rejects_are_not_retried(harness, push):
    sender = await harness.sender()
    other = ec.generate_private_key(ec.SECP256R1())
    sub = harness.subscribe(key=other)  # subscribed with another applicationServerKey
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("failed", 403, 1)
    assert not outcome.retryable and "VAPID" in outcome.reason


async def test_garbled_subscription_keys_fail_without_a_request(harness, push):
    sender, sub = await harness.sender(), harness.subscribe()
    broken = PushSubscription(sub.endpoint, "A" * 87, sub.auth)
    outcome = await sender.send(broken, b"{}", ttl=60)
    assert (outcome.status, outcome.attempts, outcome.retryable) == ("failed", 0, False)
    assert "subscription refused" in outcome.reason and "P-256" in outcome.reason
    assert push.attempts(sub.id) == []


# --- the circuit breaker -------------------------------------------------------------------------------


async def test_the_breaker_opens_after_repeated_failures_and_a_probe_closes_it(stack, push, vapid_key):
    settings = SenderSettings(retry=RetryPolicy(max_attempts=1),
                              breaker=BreakerConfig(failure_threshold=2, cool_down_s=30))
    harness = Harness(stack, [push], key=vapid_key, settings=settings)
    sender, sub = await harness.sender(), harness.subscribe()
    push.fail_next(sub.id, 500, times=2)
    assert [(await sender.send(sub, b"{}", ttl=60)).status for _ in range(2)] == ["failed"] * 2
    assert sender.breaker(push.origin).state == "open"
    refused = await sender.send(sub, b"{}", ttl=60)
    assert (refused.status, refused.attempts, refused.retryable) == ("failed", 0, True)
    assert "circuit open" in refused.reason and len(push.attempts(sub.id)) == 2
    harness.monotonic += 31
    assert (await sender.send(sub, b"{}", ttl=60)).status == "delivered"
    assert sender.breaker(push.origin).state == "closed"


# --- bounds: timeouts and concurrency ---------------------------------------------------------------


async def test_a_hung_push_service_times_out_without_stalling_another(stack, push, ca_dir, vapid_key):
    other = await stack.enter_async_context(PushService.running("127.0.0.1", 0, ca_dir))
    settings = SenderSettings(timeout_s=0.5, connect_timeout_s=0.5, concurrency=3,
                              per_origin_concurrency=2, retry=RetryPolicy(max_attempts=1))
    harness = Harness(stack, [push, other], key=vapid_key, settings=settings)
    sender = await harness.sender()
    hung, healthy = harness.subscribe(push), harness.subscribe(other)
    push.hang_next(hung.id, times=10, seconds=30)
    stuck = [asyncio.create_task(sender.send(hung, b"{}", ttl=60)) for _ in range(6)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    outcome = await sender.send(healthy, b"{}", ttl=60)
    assert outcome.status == "delivered" and time.monotonic() - started < 0.4
    assert not any(t.done() for t in stuck)
    results = await asyncio.gather(*stuck)
    assert all(r.status == "failed" and r.retryable and "within 0.5 s" in r.reason for r in results)
    assert len(push.attempts(hung.id)) == 6  # each one got its turn, two at a time


# --- the endpoint guard at send time ------------------------------------------------------------------


async def test_an_endpoint_outside_the_allow_list_is_never_contacted(stack, push, vapid_key):
    harness = Harness(stack, [push], key=vapid_key, settings=FAST, policy=EndpointPolicy())
    sender, sub = await harness.sender(), harness.subscribe()
    outcome = await sender.send(sub, b"{}", ttl=60)
    assert (outcome.status, outcome.attempts) == ("failed", 0)
    assert "endpoint refused" in outcome.reason and push.attempts(sub.id) == []


class RebindingResolver(AbstractResolver):
    """A DNS answer that moved to loopback after the endpoint was checked."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


async def test_dns_rebinding_to_a_private_address_is_refused_at_connect_time(stack, push, vapid_key):
    port = urlsplit(push.base_url).port
    policy = EndpointPolicy.of([f"push.rebind.example:{port}"])  # production: no private addresses
    harness = Harness(stack, [push], key=vapid_key, settings=FAST, policy=policy,
                      resolver=RebindingResolver())
    sender, sub = await harness.sender(), harness.subscribe()
    target = PushSubscription(f"https://push.rebind.example:{port}/push/{sub.id}", sub.p256dh, sub.auth)
    outcome = await sender.send(target, b"{}", ttl=60)
    assert (outcome.status, outcome.attempts, outcome.retryable) == ("failed", 1, False)
    assert "refused at connect time" in outcome.reason and "loopback" in outcome.reason
    assert push.attempts(sub.id) == [] and harness.sleeps == []


async def test_bad_arguments_are_a_callers_bug(harness):
    sender, sub = await harness.sender(), harness.subscribe()
    for kwargs in ({"topic": "no spaces"}, {"urgency": "urgent"}, {"ttl": 0}, {"ttl": 10**7}):
        with pytest.raises(ValueError):
            await sender.send(sub, b"{}", **kwargs)


# --- VAPID keys ----------------------------------------------------------------------------------------


def test_a_vapid_key_loads_from_a_pem_file_or_a_loaded_key(tmp_path, vapid_key):
    pem = tmp_path / "vapid.pem"
    pem.write_bytes(vapid_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    assert load_vapid_key(pem).private_key.private_numbers() == vapid_key.private_numbers()
    generated = tmp_path / "oo.pem"
    generate_keys(generated)
    loaded = load_vapid(generated)
    assert load_vapid_key(loaded).private_key.private_numbers() == loaded.private_key.private_numbers()


def test_a_missing_or_wrong_vapid_key_is_refused_rather_than_replaced(tmp_path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match="cannot read"):
        load_vapid_key(missing)
    assert not missing.exists()
    with pytest.raises(ValueError, match="P-256"):
        load_vapid_key(ec.generate_private_key(ec.SECP384R1()))


def test_a_vapid_subject_push_services_would_refuse_fails_at_construction(vapid_key):
    with pytest.raises(ValueError, match="subject"):
        VapidSigner(vapid_key, "ops@oo.example")
