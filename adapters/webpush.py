"""Web Push sending: VAPID-signed, aes128gcm-encrypted pushes through pywebpush's async path.

`PushSender` carries out what `domain.push` decides: it renders the payload
within the byte budget, signs (one VAPID JWT per audience per refresh
interval, not per push), posts through the caller's shared aiohttp session
without following redirects and within a timeout, and then retries, backs
off, shrinks or stops as `domain.push.next_step` says, behind a circuit
breaker per push service origin. Push services' answers never raise: every
send ends in a `PushOutcome`.

The session is the caller's, created with `adapters.endpoints.guarded_connector`
(so resolved addresses are checked at connect time) and its TLS context; the
sender re-checks every endpoint against its `EndpointPolicy` before sending.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeAlias, cast

import aiohttp
from http_ece import ECEException
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict
from py_vapid import Vapid, Vapid01, VapidException
from pywebpush import WebPusher, WebPushException

from adapters.endpoints import (
    AddressRefused,
    EndpointPolicy,
    EndpointRefused,
    check_endpoint,
    check_keys,
)
from domain.push import (
    DEFAULT_TTL_S,
    MAX_TTL_S,
    PLAINTEXT_BUDGET,
    URGENCIES,
    Breaker,
    BreakerConfig,
    Payload,
    PayloadTooLarge,
    PushOutcome,
    PushPlan,
    RetryPolicy,
    Shrink,
    Urgency,
    Verdict,
    admit,
    classify_error,
    classify_status,
    is_valid_topic,
    next_step,
    record_failure,
    record_success,
)

log = logging.getLogger(__name__)

VapidKey: TypeAlias = "Vapid01 | ec.EllipticCurvePrivateKey | HasPrivateKey | str | Path"


class Subscription(Protocol):
    """What a push needs of a subscription (e.g. `PushSubscription`, `adapters.tips.PendingPush`)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def p256dh(self) -> str: ...
    @property
    def auth(self) -> str: ...


# --- VAPID ----------------------------------------------------------------------------


def load_vapid_key(key: VapidKey) -> Vapid01:
    """A py_vapid signer from a key: a py_vapid `Vapid`, an EC private key, an object
    with an EC `private_key` (such as `oo.vapid.VapidKey`, which also checks file
    permissions: prefer `oo.vapid.load_vapid(path)`), or the path of a PEM file.

    A missing file is an error (py_vapid's own `from_file` would quietly make a new key).
    """
    if isinstance(key, Vapid01):
        return key
    if isinstance(key, str | Path):
        path = Path(key)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read the VAPID private key {path}: {exc.strerror or exc}") from None
        try:
            loaded = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ValueError(f"{path} is not an unencrypted PEM private key") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC private key; VAPID needs P-256")
        key = loaded
    elif not isinstance(key, ec.EllipticCurvePrivateKey):
        key = getattr(key, "private_key", None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the VAPID key must be a P-256 private key, a PEM path, or carry one "
                             "as .private_key")
    if not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"the VAPID key is on {key.curve.name}; VAPID needs P-256 (secp256r1)")
    return Vapid(private_key=key)


class HasPrivateKey(Protocol):
    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey: ...


class VapidSigner:
    """Authorization headers (RFC 8292), one signed JWT per audience per `refresh_s`.

    Each token is valid for `token_lifetime_s` (at most 24 h, RFC 8292 §2) and
    reused until `refresh_s` has passed, so a burst of pushes signs once.
    """

    def __init__(self, key: VapidKey, subject: str, *, clock: Callable[[], float] = time.time,
                 token_lifetime_s: int = 12 * 3600, refresh_s: int = 3600,
                 max_audiences: int = 1024) -> None:
        if not 0 < refresh_s < token_lifetime_s <= 24 * 3600:
            raise ValueError("VAPID tokens need 0 < refresh_s < token_lifetime_s <= 24 h")
        self._vapid = load_vapid_key(key)
        self._subject = subject
        self._clock = clock
        self._lifetime = token_lifetime_s
        self._refresh = refresh_s
        self._max = max_audiences
        self._cache: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()
        self.signed = 0  # tokens made, for tests and metrics
        try:  # fail now, not at the first push, if py_vapid refuses the subject
            self._vapid.sign({"aud": "https://push.example", "exp": int(clock()) + 60, "sub": subject})
        except VapidException as exc:
            raise ValueError(f"VAPID subject {subject!r} is invalid: {exc}") from None

    def headers(self, audience: str) -> dict[str, str]:
        """The Authorization header for `audience` (scheme://host[:port] of the endpoint)."""
        now = self._clock()
        cached = self._cache.get(audience)
        if cached is not None and now - cached[0] < self._refresh:
            return dict(cached[1])
        claims: dict[str, str | int] = {"aud": audience, "exp": int(now) + self._lifetime,
                                        "sub": self._subject}
        headers = cast(dict[str, str], self._vapid.sign(claims))
        self.signed += 1
        self._cache[audience] = (now, headers)
        self._cache.move_to_end(audience)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return dict(headers)


# --- the HTTP exchange pywebpush drives ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """A push service's answer, read (bounded) and released; quacks like what pywebpush reads."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    async def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Poster:
    """The one method WebPusher uses of an aiohttp session, with our rules: no
    redirects, our timeout, a bounded read of the answer, the connection released."""

    def __init__(self, session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout,
                 max_body: int) -> None:
        self._session = session
        self._timeout = timeout
        self._max_body = max_body

    async def post(self, url: str, *, data: bytes | None = None,
                   headers: Mapping[str, str] | None = None, **_ignored: Any) -> _Answer:
        async with self._session.post(url, data=data, headers=dict(headers or {}),
                                      timeout=self._timeout, allow_redirects=False) as response:
            body = await response.content.read(self._max_body)
            return _Answer(response.status, CIMultiDict(response.headers), body)


# --- the sender ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderSettings:
    """Timeouts, retries and bounds of sending."""

    default_ttl_s: int = DEFAULT_TTL_S
    timeout_s: float = 10.0  # one whole request: connect, send, answer
    connect_timeout_s: float = 5.0
    concurrency: int = 64  # requests in flight, all origins
    per_origin_concurrency: int = 16  # so one hung push service cannot take every slot
    max_response_bytes: int = 64 * 1024
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.default_ttl_s <= MAX_TTL_S:
            raise ValueError(f"default TTL {self.default_ttl_s} s is out of range 1..{MAX_TTL_S}")
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if not 1 <= self.per_origin_concurrency <= self.concurrency:
            raise ValueError("need 1 <= per_origin_concurrency <= concurrency")


class PushSender:
    """Sends Web Push messages; see the module docstring.

    `sleep`, `jitter` (uniform in [0, 1)), `clock` (monotonic seconds, for the
    breaker) and `now` (wall clock, for Retry-After dates) are injectable for tests.
    """

    def __init__(self, session: aiohttp.ClientSession, *, vapid_key: VapidKey | VapidSigner,
                 vapid_subject: str = "", policy: EndpointPolicy | None = None,
                 settings: SenderSettings | None = None,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings or SenderSettings()
        self._policy = policy or EndpointPolicy()
        self._signer = (vapid_key if isinstance(vapid_key, VapidSigner)
                        else VapidSigner(vapid_key, vapid_subject))
        s = self._settings
        self._poster = _Poster(session, aiohttp.ClientTimeout(total=s.timeout_s,
                                                              connect=s.connect_timeout_s),
                               s.max_response_bytes)
        self._sleep = sleep
        self._jitter = jitter
        self._clock = clock
        self._now = now
        self._slots = asyncio.Semaphore(s.concurrency)
        self._origin_slots: dict[str, asyncio.Semaphore] = {}
        self._breakers: dict[str, Breaker] = {}

    def breaker(self, origin: str) -> Breaker:
        """The circuit breaker state of a push service origin (for health and tests)."""
        return self._breakers.get(origin, Breaker())

    async def send(self, subscription: Subscription, payload: Payload | bytes, *,
                   topic: str | None = None, urgency: Urgency = "normal",
                   ttl: int | None = None) -> PushOutcome:
        """Push `payload` to one subscription; never raises for what a push service does.

        `payload` is a `domain.push` Notification/Withdrawal (re-rendered smaller
        on a 413) or ready bytes (at most PLAINTEXT_BUDGET). Raises ValueError
        only for arguments that are a caller's bug: a bad topic, urgency or ttl.
        """
        ttl = self._settings.default_ttl_s if ttl is None else ttl
        if topic is not None and not is_valid_topic(topic):
            raise ValueError(f"topic {topic!r} is not 1-32 URL-safe base64 characters")
        if urgency not in URGENCIES:
            raise ValueError(f"urgency {urgency!r} is not one of {URGENCIES}")
        if not 1 <= ttl <= MAX_TTL_S:
            raise ValueError(f"ttl {ttl} s is out of range 1..{MAX_TTL_S}")
        try:
            endpoint = check_endpoint(subscription.endpoint, self._policy)
        except EndpointRefused as exc:
            return PushOutcome("failed", f"endpoint refused: {exc}", attempts=0)
        try:
            p256dh, auth = check_keys(subscription.p256dh, subscription.auth)
        except EndpointRefused as exc:
            return PushOutcome("failed", f"subscription refused: {exc}", attempts=0)
        origin = endpoint.origin
        info = {"endpoint": endpoint.url, "keys": {"p256dh": p256dh, "auth": auth}}
        extra = {"Urgency": urgency, **({"Topic": topic} if topic else {})}
        budget, attempt = PLAINTEXT_BUDGET, 0
        while True:
            attempt += 1
            if not self._admit(origin):
                return PushOutcome("failed", f"circuit open for {origin}: the push service "
                                   "failed repeatedly; not trying now", attempt - 1, retryable=True)
            try:
                body = _render(payload, budget)
            except PayloadTooLarge as exc:
                return PushOutcome("failed", str(exc), attempt - 1)
            headers = {**self._signer.headers(origin), **extra}
            verdict, status = await self._attempt(origin, info, body, headers, ttl)
            self._record(origin, verdict, status)
            step = next_step(verdict, attempt, self._settings.retry, self._jitter(),
                             size=len(body), http_status=status)
            if isinstance(step, PushOutcome):
                return step
            if isinstance(step, Shrink):
                if isinstance(payload, bytes):
                    return PushOutcome("failed", f"{step.reason}; ready-made bytes cannot be shrunk",
                                       attempt, status)
                budget = step.budget
                continue
            log.debug("push to %s: %s; retry in %.2f s", origin, step.reason, step.delay_s)
            await self._sleep(step.delay_s)

    async def send_plan(self, subscription: Subscription, plan: PushPlan) -> PushOutcome:
        """Push one plan (payload, Topic, Urgency, TTL) to one subscription."""
        return await self.send(subscription, plan.payload, topic=plan.topic(subscription.endpoint),
                               urgency=plan.urgency, ttl=plan.ttl_s)

    async def send_many(self, subscriptions: Iterable[Subscription], plan: PushPlan) -> list[PushOutcome]:
        """Push one plan to many subscriptions concurrently; outcomes in the same order."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.send_plan(s, plan)) for s in subscriptions]
        return [t.result() for t in tasks]

    async def _attempt(self, origin: str, info: dict[str, Any], body: bytes,
                       headers: dict[str, str], ttl: int) -> tuple[Verdict, int | None]:
        """One POST, holding a global and a per-origin slot; the answer classified."""
        slots = self._origin_slots.setdefault(
            origin, asyncio.Semaphore(self._settings.per_origin_concurrency))
        # the origin's slot first: waiting on a hung push service must not hold a global slot
        async with slots, self._slots:
            try:
                async with asyncio.timeout(self._settings.timeout_s + 1):
                    pusher = WebPusher(info, aiohttp_session=cast(aiohttp.ClientSession, self._poster))
                    answer = cast(_Answer, await pusher.send_async(
                        body, headers, ttl=ttl, content_encoding="aes128gcm"))
            except TimeoutError:
                return classify_error(f"no answer from {origin} within "
                                      f"{self._settings.timeout_s:g} s"), None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, AddressRefused):
                    return Verdict("fail", f"endpoint refused at connect time: {exc.os_error}"), None
                if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
                    return Verdict("fail", f"TLS with {origin} failed: {exc}", origin_failed=True), None
                return classify_error(f"cannot connect to {origin}: {exc.os_error}"), None
            except (aiohttp.ClientError, OSError) as exc:
                return classify_error(f"connection to {origin} failed: {type(exc).__name__}: {exc}"), None
            except (WebPushException, ECEException) as exc:
                # keys were checked before; this is pywebpush or http_ece refusing anyway
                return Verdict("fail", f"cannot encrypt for this subscription: {exc}"), None
        return classify_status(answer.status, answer.headers.get("Retry-After"), self._now()), answer.status

    def _admit(self, origin: str) -> bool:
        state, allowed = admit(self.breaker(origin), self._clock(), self._settings.breaker)
        self._set_breaker(origin, state)
        return allowed

    def _record(self, origin: str, verdict: Verdict, status: int | None) -> None:
        if verdict.origin_failed:
            self._set_breaker(origin, record_failure(self.breaker(origin), self._clock(),
                                                     self._settings.breaker))
        elif status is not None:
            self._set_breaker(origin, record_success(self.breaker(origin)))

    def _set_breaker(self, origin: str, state: Breaker) -> None:
        if state == Breaker():
            self._breakers.pop(origin, None)  # a healthy origin needs no entry
        else:
            self._breakers[origin] = state


def _render(payload: Payload | bytes, budget: int) -> bytes:
    if isinstance(payload, bytes):
        if len(payload) > budget:
            raise PayloadTooLarge(f"a payload of {len(payload)} bytes is over the {budget} byte budget")
        return payload
    return payload.render(budget)

