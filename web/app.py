"""The aiohttp application factory: the PWA, its JSON API, health and readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiohttp import web

from adapters.endpoints import EndpointPolicy
from adapters.outbox import OutboxRelay
from adapters.people import People
from oo.health import readiness
from oo.settings import Settings
from oo.vapid import VapidKeyError, generate_keys, load_vapid
from web import api, auth, ingest
from web.errors import error_middleware
from web.keys import (
    DB,
    HUB,
    INGEST_LIMITER,
    POLICY,
    REACTION_LIMITER,
    RELAY,
    SETTINGS,
    SUBSCRIBE_LIMITER,
    VAPID_PUBLIC_KEY,
)
from web.live import LiveHub
from web.page import render_page
from web.ratelimit import RateLimiter
from web.security import security_headers
from web.session import caller, development_session, set_cookie

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_BODY = 256 * 1024  # bytes of a request body; more is a 413
# Rate limits (token buckets, per web process): a burst, then a steady rate per second.
INGEST_RATE, INGEST_BURST = 2.0, 20  # per ingest token
REACTION_RATE, REACTION_BURST = 1.0, 30  # per person: reactions and context signals
SUBSCRIBE_RATE, SUBSCRIBE_BURST = 0.1, 10  # per person: push subscribe/unsubscribe


def create_app(settings: Settings, *, relay: bool = True) -> web.Application:
    """Build the web app; resources open and close with the app (cleanup_ctx).

    `relay=False` leaves the outbox to another process (tests of the relay itself).
    """
    app = web.Application(middlewares=[security_headers, error_middleware], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[VAPID_PUBLIC_KEY] = vapid_public_key(settings)
    app[POLICY] = EndpointPolicy.for_env(settings.env, extra=settings.push_extra_hosts)
    app[INGEST_LIMITER] = RateLimiter(rate=INGEST_RATE, burst=INGEST_BURST)
    app[REACTION_LIMITER] = RateLimiter(rate=REACTION_RATE, burst=REACTION_BURST)
    app[SUBSCRIBE_LIMITER] = RateLimiter(rate=SUBSCRIBE_RATE, burst=SUBSCRIBE_BURST)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_live)
    app.on_shutdown.append(_close_streams)
    app.cleanup_ctx.append(auth.identity_context)
    if relay:
        app.cleanup_ctx.append(_relay)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/", index)
    app.router.add_get("/sw.js", _file("sw.js", "text/javascript", {"Cache-Control": "no-cache"}))
    app.router.add_get("/manifest.webmanifest",
                       _file("manifest.webmanifest", "application/manifest+json"))
    app.router.add_get("/api/openapi.yaml", _file("openapi.yaml", "application/yaml"))
    app.router.add_routes(api.routes)
    app.router.add_routes(ingest.routes)
    app.router.add_routes(auth.routes)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


def vapid_public_key(settings: Settings) -> str:
    """The key browsers subscribe with; dev and test make one if there is none yet.

    Raises VapidKeyError (a one-line startup error) when it is missing in production
    or unusable anywhere.
    """
    path = settings.vapid_private_key
    if settings.env != "production" and not path.exists():
        try:
            generate_keys(path)
        except VapidKeyError:
            pass  # the worker made it at the same moment: load theirs
    return load_vapid(path).public_key


async def _database(app: web.Application) -> AsyncIterator[None]:
    # A lazy pool (min_size=0): the app starts even while PostgreSQL is down
    # and reports that on /ready instead of refusing to start.
    # Short connect and command timeouts: a request answers 503 quickly, never hangs.
    pool = await asyncpg.create_pool(app[SETTINGS].database_url, min_size=0, max_size=10,
                                     timeout=5, command_timeout=10)
    app[DB] = pool
    yield
    await pool.close()


async def _live(app: web.Application) -> AsyncIterator[None]:
    hub = LiveHub(app[SETTINGS].database_url)
    hub.start()
    app[HUB] = hub
    yield
    await hub.stop()


async def _close_streams(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open requests: end the event streams now.
    app[HUB].close_streams()


async def _relay(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    relay = OutboxRelay(settings.database_url, settings.kafka_bootstrap_servers)
    app[RELAY] = relay
    task = asyncio.create_task(relay.run(), name="oo-outbox-relay")
    yield
    relay.stop()
    try:
        await asyncio.wait_for(task, 15)  # a clean stop closes the producer's connections
    except TimeoutError:
        log.warning("outbox relay did not stop in 15 s; cancelled (unpublished rows stay queued)")


def _file(name: str, content_type: str,
          headers: dict[str, str] | None = None) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = STATIC / name

    async def serve(request: web.Request) -> web.FileResponse:
        response = web.FileResponse(path, headers=headers)
        response.content_type = content_type
        return response

    return serve


async def health(request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """Kafka and PostgreSQL are reachable."""
    settings = request.app[SETTINGS]
    ok, body = await readiness(settings.kafka_bootstrap_servers, settings.database_url,
                               request.app[DB])
    return web.json_response(body, status=200 if ok else 503)


async def index(request: web.Request) -> web.Response:
    """The one page, with the current tip already in it (no spinner)."""
    pool, settings = request.app[DB], request.app[SETTINGS]
    who = await caller(request, pool)
    fresh = None
    if who is None:
        fresh = await development_session(pool, settings.env, request.headers.get("User-Agent"))
        if fresh is None and auth.OIDC in request.app:
            return auth.redirect("/signin")
    user_id = who.user_id if who else fresh.user_id if fresh else None
    csrf = who.csrf_token if who else fresh.csrf_token if fresh else ""
    tip = await People(pool).current_tip(user_id, datetime.now(UTC)) if user_id else None
    html = render_page(tip, csrf_token=csrf, vapid_public_key=request.app[VAPID_PUBLIC_KEY])
    response = web.Response(text=html, content_type="text/html",
                            headers={"Cache-Control": "no-store"})
    if fresh is not None:
        set_cookie(response, fresh, secure=request.secure)
    return response
