"""Connectors: the interface, the registry, careful outbound HTTP, and the service.

A connector (adapters/todoist.py is the first) links oO to a service that
holds a person's data. It never asks for a password or a raw API key: the
person grants access by OAuth, and the tokens go to the vault
(adapters/credentials.py). Its data is fetched on demand and sent on as
normalized signals; it is not copied into the database.

- `Connector` is the interface: `begin_oauth`, `finish_oauth`, `refresh`,
  `fetch_signals` (incremental since a cursor), `act` (e.g. complete a task)
  and `revoke`.
- `OutboundHttp` is how connectors call out: a timeout on every call,
  retries with full-jitter backoff on 429/5xx and network errors (honouring a
  short Retry-After), and a circuit breaker per service.
- `ConnectorService` does the rest for every connector alike: OAuth attempts
  bound to the person's session, transparent refresh of expired tokens,
  syncing into the outbox in one transaction with the new cursor, acting on
  feedback, disconnecting (revoke, then wipe) and forgetting a person.

Tokens never appear in logs, errors or answers: exceptions carry only what
a person may read, and `Tokens` hides its fields from repr.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import aiohttp
import asyncpg

from adapters import outbox
from adapters.credentials import Credential, CredentialStore, Tokens
from adapters.vault import VaultError
from domain.push import (
    Breaker,
    BreakerConfig,
    RetryPolicy,
    admit,
    backoff_s,
    record_failure,
    record_success,
)
from topics.catalog import SIGNALS
from topics.records import Event, FeedbackGiven

log = logging.getLogger(__name__)
ATTEMPT_LIFETIME = timedelta(minutes=10)
TODO_TIP_PREFIX = "todo:"  # tip ids of todos: "todo:<connector>:<id at the connector>"
T = TypeVar("T")


# --- errors ------------------------------------------------------------------------------


class ConnectorError(Exception):
    """A connector call failed; the message is safe to show (never a token)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectorUnavailable(ConnectorError):
    """The service did not answer usefully (timeouts, 5xx, 429, an open circuit)."""


class AuthorizationLost(ConnectorError):
    """The service no longer accepts the tokens (revoked there, or expired)."""


class ConnectorRefused(ConnectorError):
    """The service refused the request itself (a bad code, a 4xx)."""


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """What finishing an OAuth flow gives: the tokens and the scopes granted."""

    tokens: Tokens = field(repr=False)
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SignalBatch:
    """Signals read since a cursor, and the cursor to read from next time."""

    signals: tuple[Event, ...]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Complete:
    """Mark the item `item_id` done at the service; `idempotency_key` makes a retry harmless."""

    item_id: str
    idempotency_key: str


class Connector(Protocol):
    """What every connector offers; the service does the rest."""

    name: str
    title: str
    scopes: tuple[str, ...]

    def begin_oauth(self, state: str, redirect_uri: str) -> str:
        """The URL that asks the person to grant access."""

    async def finish_oauth(self, code: str, redirect_uri: str, now: datetime) -> Grant:
        """Exchange the code for tokens."""

    async def refresh(self, tokens: Tokens, now: datetime) -> Tokens:
        """New tokens from the refresh token (AuthorizationLost if impossible)."""

    async def fetch_signals(self, user_id: str, tokens: Tokens, cursor: str | None, *,
                            now: datetime, time_zone: str) -> SignalBatch:
        """Normalized signals of what changed since `cursor` (everything when None)."""

    async def act(self, tokens: Tokens, action: Complete) -> None:
        """Carry out an action at the service."""

    async def revoke(self, tokens: Tokens) -> None:
        """Tell the service to forget the grant."""


# --- outbound HTTP -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    timeout_s: float = 10.0
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=4, base_s=0.5,
                                                                   cap_s=8.0,
                                                                   max_retry_after_s=30.0))
    breaker: BreakerConfig = field(default_factory=lambda: BreakerConfig(5, 30.0))


class OutboundHttp:
    """Calls to one outside service: timeouts, retries with jitter, a circuit breaker.

    `sleep`, `jitter` and `clock` (monotonic, for the breaker) are injectable for tests.
    """

    def __init__(self, session: aiohttp.ClientSession, service: str,
                 policy: HttpPolicy | None = None, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._session = session
        self.service = service
        self.policy = policy or HttpPolicy()
        self._sleep, self._jitter, self._clock = sleep, jitter, clock
        self.breaker = Breaker()

    async def request(self, method: str, url: str, *, data: Mapping[str, str] | None = None,
                      json: Any = None, headers: Mapping[str, str] | None = None,
                      retry: bool = True) -> Answer:
        """The service's answer to a call, once it is not a 429/5xx; else ConnectorUnavailable."""
        policy = self.policy
        attempts = policy.retry.max_attempts if retry else 1
        reason = ""
        for attempt in range(1, attempts + 1):
            self.breaker, allowed = admit(self.breaker, self._clock(), policy.breaker)
            if not allowed:
                raise ConnectorUnavailable(f"{self.service} is unavailable (too many failures "
                                           "lately); try again later")
            retry_after: float | None = None
            try:
                async with self._session.request(
                        method, url, data=data, json=json, headers=dict(headers or {}),
                        timeout=aiohttp.ClientTimeout(total=policy.timeout_s)) as response:
                    body = await response.read()
                    status, answer_headers = response.status, dict(response.headers)
            except (aiohttp.ClientError, TimeoutError) as err:
                reason = ("no answer within the timeout" if isinstance(err, TimeoutError)
                          else f"connection failed ({type(err).__name__})")
            else:
                if status != 429 and status < 500:
                    self.breaker = record_success(self.breaker)
                    return Answer(status, body, answer_headers)
                reason = f"HTTP {status}"
                retry_after = _seconds(answer_headers.get("Retry-After"))
            self.breaker = record_failure(self.breaker, self._clock(), policy.breaker)
            if attempt == attempts:
                break
            if retry_after is not None and retry_after > policy.retry.max_retry_after_s:
                break
            delay = (retry_after if retry_after is not None
                     else backoff_s(attempt, policy.retry, self._jitter()))
            log.info("%s: %s; retry %d in %.2fs", self.service, reason, attempt, delay)
            await self._sleep(delay)
        raise ConnectorUnavailable(f"{self.service} did not answer usefully ({reason}); "
                                   "try again later")


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: back off on our own schedule


# --- the service -------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Disconnected:
    """What disconnecting did: the stored credential is gone; `revoked` says if the service heard."""

    existed: bool
    revoked: bool


class ConnectorService:
    """Every connector's OAuth, tokens, syncing, acting and revoking, the same way."""

    def __init__(self, pool: asyncpg.Pool, store: CredentialStore,
                 connectors: Mapping[str, Connector], *, public_url: str) -> None:
        self._pool = pool
        self.store = store
        self.connectors = dict(connectors)
        self._public_url = public_url

    def redirect_uri(self, name: str) -> str:
        return f"{self._public_url}/connectors/{name}/callback"

    def get(self, name: str) -> Connector:
        connector = self.connectors.get(name)
        if connector is None:
            raise ConnectorRefused(f"{name!r} is not a configured connector")
        return connector

    async def begin(self, user_id: uuid.UUID, name: str, now: datetime) -> str:
        """A new OAuth attempt for this person; the URL to send their browser to."""
        connector = self.get(name)
        state = secrets.token_urlsafe(24)
        await self._pool.execute("DELETE FROM connector_attempts WHERE expires_at < $1", now)
        await self._pool.execute(
            """INSERT INTO connector_attempts (id, user_id, connector, created_at, expires_at)
               VALUES ($1, $2, $3, $4, $5)""",
            _digest(state), user_id, name, now, now + ATTEMPT_LIFETIME)
        return connector.begin_oauth(state, self.redirect_uri(name))

    async def finish(self, user_id: uuid.UUID, name: str, state: str, code: str,
                     now: datetime) -> Grant:
        """Back from the service: the attempt must be this person's, for this connector, fresh."""
        connector = self.get(name)
        row = await self._pool.fetchrow(
            "DELETE FROM connector_attempts WHERE id = $1 RETURNING user_id, connector, expires_at",
            _digest(state))
        if row is None or row["user_id"] != user_id or row["connector"] != name:
            raise ConnectorRefused("this connection was not started from this session, or was "
                                   "already completed; start again")
        if row["expires_at"] <= now:
            raise ConnectorRefused("this connection took too long and expired; start again")
        grant = await connector.finish_oauth(code, self.redirect_uri(name), now)
        await self.store.save(user_id, name, grant.tokens, grant.scopes)
        log.info("%s connected for %s (scopes %s)", name, user_id, ",".join(grant.scopes))
        return grant

    async def _with_tokens(self, credential: Credential,
                           call: Callable[[Tokens], Awaitable[T]], now: datetime) -> T:
        """Run `call` with valid tokens: refresh first if expired, and once more on a 401."""
        tokens = credential.tokens
        if tokens.expired(now) and tokens.refresh_token:
            tokens = await self._refresh(credential, tokens, now)
        try:
            return await call(tokens)
        except AuthorizationLost:
            if not tokens.refresh_token:
                raise
        tokens = await self._refresh(credential, tokens, now)
        return await call(tokens)

    async def _refresh(self, credential: Credential, tokens: Tokens, now: datetime) -> Tokens:
        fresh = await self.get(credential.connector).refresh(tokens, now)
        await self.store.replace_tokens(credential.user_id, credential.connector, fresh)
        log.info("%s tokens refreshed for %s", credential.connector, credential.user_id)
        return fresh

    async def sync(self, user_id: uuid.UUID, name: str, now: datetime) -> int:
        """Read what changed since the cursor; queue the signals and the new cursor together."""
        credential = await self.store.get(user_id, name)
        if credential is None:
            return 0
        zone = await self._pool.fetchval("SELECT time_zone FROM users WHERE id = $1", user_id)
        connector = self.get(name)
        batch = await self._with_tokens(
            credential, lambda tokens: connector.fetch_signals(
                str(user_id), tokens, credential.cursor, now=now, time_zone=zone or "UTC"), now)
        async with self._pool.acquire() as conn, conn.transaction():
            # Still connected? A disconnect meanwhile must not be undone by a late sync.
            still = await conn.fetchval(
                "SELECT true FROM credentials WHERE user_id = $1 AND connector = $2 FOR UPDATE",
                user_id, name)
            if not still:
                return 0
            for signal in batch.signals:
                await outbox.add(conn, SIGNALS[_domain(signal)], signal)
            await self.store.set_cursor(conn, user_id, name, batch.cursor)
        return len(batch.signals)

    async def sync_everyone(self, now: datetime) -> int:
        """One round over every connected person of every connector; failures are logged."""
        total = 0
        for name in self.connectors:
            for user_id in await self.store.pending_sync(name):
                try:
                    total += await self.sync(user_id, name, now)
                except ConnectorError as err:
                    log.warning("%s sync for %s failed: %s", name, user_id, err.message)
                except VaultError as err:  # a retired key or a tampered row: this person only
                    log.warning("%s sync for %s skipped: %s", name, user_id, err)
        return total

    async def act_on(self, feedback: FeedbackGiven, now: datetime) -> bool:
        """A `done` on a todo tip that came from a connector completes the item there."""
        if feedback.reaction != "done" or not feedback.tip_id.startswith(TODO_TIP_PREFIX):
            return False
        name, sep, item_id = feedback.tip_id[len(TODO_TIP_PREFIX):].partition(":")
        if not sep or not item_id or name not in self.connectors:
            return False
        credential = await self.store.get(uuid.UUID(feedback.user_id), name)
        if credential is None:
            return False
        action = Complete(item_id, idempotency_key=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                  feedback.event_id)))
        connector = self.get(name)
        await self._with_tokens(credential, lambda tokens: connector.act(tokens, action), now)
        log.info("%s item completed for %s", name, feedback.user_id)
        return True

    async def disconnect(self, user_id: uuid.UUID, name: str) -> Disconnected:
        """Revoke the grant at the service, then wipe the stored tokens (even if it failed)."""
        credential = await self.store.get(user_id, name)
        if credential is None:
            return Disconnected(False, False)
        revoked = True
        try:
            await self.get(name).revoke(credential.tokens)
        except ConnectorError as err:
            revoked = False
            log.warning("%s revocation for %s failed: %s; the stored tokens are wiped anyway",
                        name, user_id, err.message)
        await self.store.delete(user_id, name)
        log.info("%s disconnected for %s", name, user_id)
        return Disconnected(True, revoked)

    async def forget(self, user_id: uuid.UUID) -> list[Disconnected]:
        """Before a person is deleted: disconnect every connector they use."""
        rows = await self._pool.fetch("SELECT connector FROM credentials WHERE user_id = $1",
                                      user_id)
        results = []
        for row in rows:
            if row["connector"] in self.connectors:
                results.append(await self.disconnect(user_id, row["connector"]))
        return results


def _domain(signal: Event) -> str:
    for domain, spec in SIGNALS.items():
        if isinstance(signal, spec.record):
            return domain
    raise TypeError(f"{type(signal).__name__} is not a signal")


def todo_tip_id(connector: str, item_id: str) -> str:
    """The tip id the engine gives a todo from this connector's item (see domain/candidates.py)."""
    return f"{TODO_TIP_PREFIX}{connector}:{item_id}"


def utc_now() -> datetime:
    return datetime.now(UTC)
