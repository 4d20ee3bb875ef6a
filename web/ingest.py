"""Signal ingest for trackers: `POST /api/signals` with a per-person ingest token.

Trackers that can only send webhooks (habit apps, mood loggers, home
automation, shortcuts) post a batch of normalized signals with
`Authorization: Bearer oo_it_...`. The batch is validated whole first (an
error names the item and field, and nothing of the batch is applied), then
queued in one transaction through the outbox. A replayed `event_id` is
accepted once. Each token is limited in rate and scoped to signal domains,
and may expire. Tokens are created, listed and revoked by the signed-in person.

Refused tokens (unknown, revoked, expired) are limited per client address: a
burst, then one every 2 s; beyond it the address gets 429 before any lookup,
valid tokens from it included, until its bucket refills. (Behind a reverse
proxy every client shares its address, as for sign-in: limit there too.)
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web

from adapters.ingest import IngestStore, TokenOwner
from oo.exposure import bearer
from topics.catalog import SIGNALS
from topics.codec import InvalidRecord, Limit, from_plain
from topics.records import Event
from topics.validation import TimeOutOfRange, check_recent, check_times
from web.api import body
from web.errors import ApiError, NotFound, TooManyRequests
from web.keys import DB, INGEST_LIMITER, INGEST_REFUSED_LIMITER
from web.ratelimit import retry_after
from web.session import Unauthorized, require

routes = web.RouteTableDef()
# Lifecycle events (account created, deletion) come only from oO itself.
INGESTIBLE = ("tasks", "habits", "calendar", "mood", "context")
MAX_BATCH = 100  # 100 signals of the largest kind fit in the 256 KiB body limit
LONGEST_LIFE = timedelta(days=5 * 366)  # the furthest expires_at a new token may have
Domain = Literal["tasks", "habits", "calendar", "mood", "context"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTokenBody:
    name: Annotated[str, Limit(min_len=1, max_len=64)]
    domains: Annotated[list[Domain], Limit(min_len=1, max_len=5)]
    expires_at: datetime | None = None  # None: until revoked


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalBatch:
    signals: Annotated[list[dict[str, Any]], Limit(min_len=1, max_len=MAX_BATCH)]


def store(request: web.Request) -> IngestStore:
    return IngestStore(request.app[DB])


@routes.get("/api/ingest-tokens")
async def list_tokens(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    return web.json_response({"tokens": await store(request).tokens(who.user_id)})


@routes.post("/api/ingest-tokens")
async def create_token(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    sent: CreateTokenBody = await body(request, CreateTokenBody)
    domains: list[str] = sorted(set(sent.domains))
    if sent.expires_at is not None:
        now = datetime.now(UTC)
        if sent.expires_at <= now:
            raise ApiError("invalid body: expires_at: must be in the future")
        if sent.expires_at > now + LONGEST_LIFE:
            raise ApiError("invalid body: expires_at: at most 5 years ahead")
    listing, token = await store(request).create_token(who.user_id, sent.name, domains,
                                                       sent.expires_at)
    return web.json_response({**listing, "token": token}, status=201,
                             headers={"Cache-Control": "no-store"})


@routes.delete(r"/api/ingest-tokens/{token_id:[0-9a-fA-F-]{36}}")
async def revoke_token(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    try:
        token_id = uuid.UUID(request.match_info["token_id"])
    except ValueError:
        raise NotFound("no such token") from None
    if not await store(request).revoke(who.user_id, token_id):
        raise NotFound("no such token")
    return web.Response(status=204)


@routes.post("/api/signals")
async def ingest(request: web.Request) -> web.Response:
    owner = await _owner(request)
    wait = request.app[INGEST_LIMITER].take(owner.token_id, time.monotonic())
    if wait:
        raise TooManyRequests(retry_after(wait), "requests for this token")
    batch: SignalBatch = await body(request, SignalBatch)
    now = datetime.now(UTC)
    records = [_record(i, item, str(owner.user_id), owner.domains, now)
               for i, item in enumerate(batch.signals)]
    ids = [r.event_id for _, r in records]
    if len(set(ids)) != len(ids):
        raise ApiError("signals: an event_id appears twice in the batch")
    done = await store(request).ingest(owner.user_id, records, now)
    return web.json_response({"accepted": done.accepted, "duplicates": done.duplicates},
                             status=202)


async def _owner(request: web.Request) -> TokenOwner:
    """The owner of the request's ingest token, or 401; 429 once its address was refused too often."""
    refused, address = request.app[INGEST_REFUSED_LIMITER], request.remote or "unknown"
    # Checked before the lookup, so a burst of guesses costs the database nothing.
    wait = refused.wait(address, time.monotonic())
    if wait:
        raise TooManyRequests(retry_after(wait), "refused ingest tokens from this address")
    token = bearer(request.headers.get("Authorization"))
    if token is None:
        raise Unauthorized("send an ingest token: Authorization: Bearer oo_it_...")
    owner = await store(request).owner(token)
    if isinstance(owner, TokenOwner):
        return owner
    refused.take(address, time.monotonic())
    if owner == "expired":
        raise Unauthorized("this ingest token has expired; make a new one")
    raise Unauthorized("unknown or revoked ingest token")


def _record(index: int, item: dict[str, Any], user_id: str,
            allowed: frozenset[str], now: datetime) -> tuple[str, Event]:
    """One batch item as its validated record; errors name the item and the field.

    A well-formed time too far from now (occurred_at more than a day ahead or a
    year back; any time outside the years the engine computes with) is a 422:
    the request is understood, its content refused.
    """
    where = f"signals[{index}]"
    domain = item.get("domain")
    if domain not in INGESTIBLE:
        raise ApiError(f"{where}.domain: must be one of {', '.join(INGESTIBLE)}")
    if domain not in allowed:
        raise ApiError(f"{where}.domain: this token may not send {domain} signals", status=403)
    if "user_id" in item:
        raise ApiError(f"{where}.user_id: set by the token; leave it out")
    fields = {k: v for k, v in item.items() if k != "domain"}
    fields["user_id"] = user_id
    fields.setdefault("source", "ingest")
    try:
        record = from_plain(SIGNALS[domain].record, fields)
        check_times(record)
        check_recent(record.occurred_at, now)
    except TimeOutOfRange as err:
        raise ApiError(f"{where}.{err.reason}", status=422) from None
    except InvalidRecord as err:
        raise ApiError(f"{where}.{err.reason}" if not err.reason.startswith("record")
                       else f"{where}: {err.reason.removeprefix('record: ')}") from None
    return domain, record
