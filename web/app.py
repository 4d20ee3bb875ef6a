"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from oo.health import readiness
from oo.settings import Settings
from web.errors import error_middleware
from web.security import security_headers

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", asyncpg.Pool)
STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings) -> web.Application:
    """Build the web app; resources open and close with the app (cleanup_ctx)."""
    app = web.Application(middlewares=[security_headers, error_middleware], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_database)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    # A lazy pool (min_size=0): the app starts even while PostgreSQL is down
    # and reports that on /ready instead of refusing to start.
    pool = await asyncpg.create_pool(app[SETTINGS].database_url, min_size=0, max_size=10)
    app[DB] = pool
    yield
    await pool.close()


async def health(request: web.Request) -> web.Response:
    """The process is alive."""
    return web.json_response({"status": "alive"})


async def ready(request: web.Request) -> web.Response:
    """Kafka and PostgreSQL are reachable."""
    settings = request.app[SETTINGS]
    ok, body = await readiness(settings.kafka_bootstrap_servers, settings.database_url,
                               request.app[DB])
    return web.json_response(body, status=200 if ok else 503)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")
