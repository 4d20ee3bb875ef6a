"""The JSON API of the PWA (documented in web/static/openapi.yaml).

Handlers are wiring: validate the body (strictly: unknown fields, wrong types
and out-of-range values are a 400 naming the field), act through an adapter,
answer. Every state-changing request needs the session cookie and its CSRF
token (web/session.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from aiohttp import web

from adapters.export import export_person
from adapters.endpoints import EndpointPolicy, EndpointRefused, verify_subscription
from adapters.people import People
from domain.clock import is_known_zone
from domain.reactions import Refuse, Repeat
from topics.codec import InvalidRecord, Limit, from_plain
from topics.records import LifecycleChanged, MinuteOfDay
from web.account import delete_everything
from web.errors import ApiError, NotFound, TooManyRequests
from web.keys import (DB, HUB, POLICY, REACTION_LIMITER, SETTINGS, SUBSCRIBE_LIMITER,
                      VAPID_PUBLIC_KEY)
from web.ratelimit import RateLimiter, retry_after
from web.session import Caller, caller, clear_cookie, cookie_secure, require

routes = web.RouteTableDef()
KEEPALIVE_S = 15.0
Device = Annotated[str, Limit(min_len=1, max_len=64)]


# --- request bodies ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReactionBody:
    reaction: Literal["done", "ack", "save", "snooze", "dismiss", "seen"]
    snooze_until: datetime | None = None
    dwell_ms: Annotated[int, Limit(low=0, high=86_400_000)] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextBody:
    kind: Literal["app_opened", "page_visible", "page_hidden"]
    device: Device | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreferencesBody:
    time_zone: Annotated[str, Limit(min_len=1, max_len=64)] | None = None
    quiet_start_minute: MinuteOfDay | None = None
    quiet_end_minute: MinuteOfDay | None = None
    daily_budget: Annotated[int, Limit(low=0, high=24)] | None = None
    kinds: Annotated[list[Literal["todo", "advice"]], Limit(max_len=2)] | None = None

    def __post_init__(self) -> None:
        if self.time_zone is not None and not is_known_zone(self.time_zone):
            raise ValueError(f"time_zone: {self.time_zone!r} is not an IANA time zone")


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionKeys:
    p256dh: Annotated[str, Limit(min_len=1, max_len=200)]
    auth: Annotated[str, Limit(min_len=1, max_len=100)]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionBody:
    endpoint: Annotated[str, Limit(min_len=1, max_len=2000)]
    keys: SubscriptionKeys
    expirationTime: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsubscribeBody:
    endpoint: Annotated[str, Limit(min_len=1, max_len=2000)]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteMeBody:
    confirm: Literal["delete everything"]


async def body(request: web.Request, cls: type[Any]) -> Any:
    """The request's JSON body as a validated `cls`, or a 400/415 that says what is wrong."""
    if request.content_type != "application/json":
        raise ApiError("send the body as JSON (Content-Type: application/json)", status=415)
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ApiError("the body is not valid JSON") from None
    try:
        return from_plain(cls, data)
    except InvalidRecord as err:
        raise ApiError(f"invalid body: {err.reason}") from None


def limit(request: web.Request, key: web.AppKey[RateLimiter], who: Caller, what: str) -> None:
    """429 with Retry-After once this person's bucket for `what` is empty."""
    wait = request.app[key].take(who.user_id, time.monotonic())
    if wait:
        raise TooManyRequests(retry_after(wait), what)


def people(request: web.Request) -> People:
    return People(request.app[DB])


def now() -> datetime:
    return datetime.now(UTC)


# --- tips ---------------------------------------------------------------------------


@routes.get("/api/tip")
async def current_tip(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    return web.json_response({"tip": await people(request).current_tip(who.user_id, now())})


@routes.post(r"/api/tips/{decision_id:[A-Za-z0-9:_.\-]{1,128}}/reactions")
async def reaction(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    limit(request, REACTION_LIMITER, who, "reactions")
    sent: ReactionBody = await body(request, ReactionBody)
    result = await people(request).react(
        who.user_id, request.match_info["decision_id"], sent.reaction,
        snooze_until=sent.snooze_until, dwell_ms=sent.dwell_ms, now=now(),
        event_id=str(uuid.uuid4()))
    if result.outcome is None:
        raise NotFound("no such tip")
    if isinstance(result.outcome, Refuse):
        raise ApiError(result.outcome.reason, status=result.outcome.status)
    if isinstance(result.outcome, Repeat):
        return web.json_response({"status": "already recorded"}, status=200)
    return web.json_response({"status": "accepted"}, status=202)


@routes.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `tip` with the current tip, on connect and on every change."""
    who = await require(request, request.app[DB])
    hub = request.app[HUB]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    wake = hub.subscribe(who.user_id)
    last: object = ...
    try:
        await response.write(b"retry: 2000\n\n")
        while not hub.closing:
            wake.clear()
            if last is not ... and await caller(request, request.app[DB]) is None:
                break  # signed out or deleted meanwhile: the stream ends with the session
            tip = await people(request).current_tip(who.user_id, now())
            if tip != last:
                data = orjson.dumps({"tip": tip})
                await response.write(b"event: tip\ndata: " + data + b"\n\n")
                last = tip
            try:
                await asyncio.wait_for(wake.wait(), _next_check(tip))
            except TimeoutError:
                await response.write(b": keepalive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(who.user_id, wake)
    return response


def _next_check(tip: dict[str, Any] | None) -> float:
    """Wait for a change, but wake for the keepalive or when the shown tip expires."""
    if tip is None or tip["expires_at"] is None:
        return KEEPALIVE_S
    left = (datetime.fromisoformat(tip["expires_at"]) - now()).total_seconds()
    return max(0.05, min(KEEPALIVE_S, left + 0.05))


# --- context and preferences --------------------------------------------------------


@routes.post("/api/context")
async def context(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    limit(request, REACTION_LIMITER, who, "reactions")
    sent: ContextBody = await body(request, ContextBody)
    await people(request).observe(who.user_id, sent.kind, sent.device, now(), str(uuid.uuid4()))
    return web.json_response({"status": "accepted"}, status=202)


@routes.get("/api/preferences")
async def get_preferences(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    prefs = await people(request).preferences(who.user_id)
    if prefs is None:
        raise NotFound("no such person")
    return web.json_response(prefs)


@routes.put("/api/preferences")
async def put_preferences(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    sent: PreferencesBody = await body(request, PreferencesBody)
    given = {k: getattr(sent, k) for k in PreferencesBody.__dataclass_fields__
             if getattr(sent, k) is not None}
    if not given:
        raise ApiError("nothing to change: send at least one preference")
    at = now()
    change = LifecycleChanged(event_id=str(uuid.uuid4()), user_id=str(who.user_id),
                              occurred_at=at, source="web", change="preferences_changed",
                              **given)
    prefs = await people(request).set_preferences(who.user_id, change, dict(given))
    return web.json_response(prefs)


# --- push ---------------------------------------------------------------------------


@routes.get("/api/vapid-public-key")
async def vapid_public_key(request: web.Request) -> web.Response:
    return web.json_response({"public_key": request.app[VAPID_PUBLIC_KEY]})


@routes.post("/api/push/subscriptions")
async def subscribe(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    limit(request, SUBSCRIBE_LIMITER, who, "subscription changes")
    sent: SubscriptionBody = await body(request, SubscriptionBody)
    policy: EndpointPolicy = request.app[POLICY]
    try:
        sub = await verify_subscription(sent.endpoint, sent.keys.p256dh, sent.keys.auth, policy)
    except EndpointRefused as err:
        raise ApiError(f"subscription refused: {err}") from None
    sub_id = await people(request).subscribe(who.user_id, sub, request.headers.get("User-Agent"))
    if sub_id is None:
        raise ApiError("this push endpoint is registered to another account with other keys",
                       status=409)
    return web.json_response({"id": str(sub_id)}, status=201)


@routes.delete("/api/push/subscriptions")
async def unsubscribe(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    limit(request, SUBSCRIBE_LIMITER, who, "subscription changes")
    sent: UnsubscribeBody = await body(request, UnsubscribeBody)
    if not await people(request).unsubscribe(who.user_id, sent.endpoint):
        raise NotFound("no such subscription")
    return web.Response(status=204)


# --- me -----------------------------------------------------------------------------


@routes.get("/api/me")
async def get_me(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    me = await people(request).me(who.user_id)
    if me is None:
        raise NotFound("no such person")
    return web.json_response(me)


@routes.get("/me/export")
async def export_me(request: web.Request) -> web.Response:
    """Everything oO holds about the caller, as a JSON download (adapters/export.py)."""
    who = await require(request, request.app[DB])
    at = now()
    everything = await export_person(request.app[DB], who.user_id, at)
    if everything is None:
        raise NotFound("no such person")
    return web.json_response(
        everything, dumps=lambda value: json.dumps(value, ensure_ascii=False, indent=1),
        headers={"Cache-Control": "no-store",
                 "Content-Disposition": f'attachment; filename="oo-export-{at:%Y%m%d}.json"'})


@routes.delete("/api/me")
async def delete_me(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    await body(request, DeleteMeBody)  # the confirmation step: {"confirm": "delete everything"}
    if not await delete_everything(request.app, who.user_id):  # web/account.py
        raise NotFound("no such person")
    response = web.Response(status=204)
    clear_cookie(response, secure=cookie_secure(request, request.app[SETTINGS].env))
    return response
