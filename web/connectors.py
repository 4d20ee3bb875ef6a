"""The connectors page and its OAuth round trips; the connectors' background work.

- `GET /connectors` lists every connector with the access it asks for, and
  whether this person has connected it.
- `POST /connectors/{name}/connect` (CSRF-checked form) leaves for the
  service's consent page; `GET /connectors/{name}/callback` comes back with
  a code, which only the session that started the attempt can redeem; the
  first sync runs at once.
- `POST /connectors/{name}/disconnect` (CSRF-checked) revokes the grant at
  the service and wipes the stored tokens.

In the background of each web process, when a connector is configured: a
sync round every minute (one process at a time, by an advisory lock), and a
consumer of oo.feedback that completes a connector's task when the person
answers `done` to its todo tip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiohttp import web

from adapters.connectors import Connector, ConnectorError, ConnectorService, OutboundHttp
from adapters.credentials import CredentialStore
from adapters.todoist import TodoistConnector
from adapters.vault import Vault
from oo.settings import Settings
from topics.catalog import FEEDBACK
from topics.codec import InvalidRecord, decode
from topics.records import FeedbackGiven
from web.account_pages import ConnectorRow, connectors_page, refusal_page
from web.auth import HTTP, redirect
from web.keys import DB, SETTINGS
from web.security import CSP
from web.session import caller, require

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
SERVICE = web.AppKey("connectors", ConnectorService)
VAULT = web.AppKey("vault", Vault)
SYNC_INTERVAL_S = 60.0
SYNC_LOCK_ID = 0x6F6F_0002  # pg advisory lock: one syncing web process at a time
STALE_FEEDBACK = timedelta(hours=1)  # older answers are not acted on (e.g. a new consumer group)
NAME = r"{name:[a-z][a-z0-9_]{0,31}}"
KNOWN = {"todoist": ("Todoist", TodoistConnector.scopes)}  # every connector oO has, for the page


def configured_connectors(settings: Settings, http: OutboundHttp) -> dict[str, Connector]:
    """The connectors this server can offer (their app credentials and a vault key are set)."""
    found: dict[str, Connector] = {}
    if settings.todoist_configured:
        found["todoist"] = TodoistConnector(
            http, client_id=settings.todoist_client_id or "",
            client_secret=settings.todoist_client_secret or "",
            auth_url=settings.todoist_auth_url, api_url=settings.todoist_api_url)
    return found


async def connectors_context(app: web.Application) -> AsyncIterator[None]:
    """The vault, the connector service and (with any connector) its background tasks."""
    settings = app[SETTINGS]
    vault = Vault(settings.vault_keys)
    app[VAULT] = vault
    connectors = configured_connectors(settings, OutboundHttp(app[HTTP], "Todoist"))
    service = ConnectorService(app[DB], CredentialStore(app[DB], vault), connectors,
                               public_url=settings.public_url)
    app[SERVICE] = service
    tasks = []
    if connectors:
        tasks = [asyncio.create_task(_sync_forever(settings, service), name="oo-connector-sync"),
                 asyncio.create_task(_act_on_feedback(settings, service),
                                     name="oo-connector-act")]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError):
            await task


async def _sync_forever(settings: Settings, service: ConnectorService) -> None:
    """A sync round every minute, by whichever web process holds the lock."""
    while True:
        try:
            conn = await asyncpg.connect(settings.database_url, timeout=10)
            try:
                while True:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", SYNC_LOCK_ID):
                        count = await service.sync_everyone(datetime.now(UTC))
                        if count:
                            log.info("connector sync: %d signals", count)
                    await asyncio.sleep(SYNC_INTERVAL_S)
            finally:
                await conn.close(timeout=5)  # releases the lock
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
            log.warning("connector sync: %s; retrying in %.0fs", type(err).__name__,
                        SYNC_INTERVAL_S)
            await asyncio.sleep(SYNC_INTERVAL_S)


async def _act_on_feedback(settings: Settings, service: ConnectorService) -> None:
    """Complete a connector's task when its todo tip is answered `done` (at least once)."""
    while True:
        consumer = AIOKafkaConsumer(
            FEEDBACK.name, bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=f"{settings.app_id}.connectors", enable_auto_commit=False,
            auto_offset_reset="earliest")
        try:
            await consumer.start()
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=100)
                for records in batch.values():
                    for record in records:
                        await _act_on(service, record.value)
                if batch:
                    await consumer.commit()
        except (KafkaError, OSError) as err:
            log.warning("connector feedback consumer: %s; restarting", type(err).__name__)
            await asyncio.sleep(5)
        finally:
            await consumer.stop()


async def _act_on(service: ConnectorService, value: bytes | None) -> None:
    now = datetime.now(UTC)
    try:
        feedback = decode(FeedbackGiven, value or b"")
    except InvalidRecord:
        return  # the engine dead-letters bad records; nothing to do here
    if now - feedback.occurred_at > STALE_FEEDBACK:
        return
    try:
        await service.act_on(feedback, now)
    except ConnectorError as err:
        log.warning("could not carry out %s for %s: %s", feedback.reaction, feedback.user_id,
                    err.message)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


@routes.get("/connectors")
async def page(request: web.Request) -> web.Response:
    """Every connector, the access it asks, and this person's connections."""
    who = await caller(request, request.app[DB])
    if who is None:
        return redirect("/signin")
    service = request.app[SERVICE]
    connected = await service.store.connections(who.user_id)
    rows = [ConnectorRow(name, title, scopes, name in service.connectors,
                         connected[name][1] if name in connected else None)
            for name, (title, scopes) in KNOWN.items()]
    messages = {"connected": "Connected.", "disconnected": "Disconnected: access revoked and "
                "the stored tokens wiped.", "wiped": "Disconnected: the stored tokens are "
                "wiped; the service could not be told, revoke oO's access there too."}
    response = _html(connectors_page(rows, csrf_token=who.csrf_token,
                                     message=messages.get(request.query.get("done", ""))))
    # The Connect forms post here and are redirected to the service's consent page;
    # browsers apply CSP form-action to that redirect too, so name the services.
    origins = sorted({_origin(c.begin_oauth("x", "x")) for c in service.connectors.values()})
    response.headers["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", " ".join(["form-action 'self'", *origins]))
    return response


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@routes.post(f"/connectors/{NAME}/connect")
async def connect(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    try:
        url = await request.app[SERVICE].begin(who.user_id, request.match_info["name"],
                                               datetime.now(UTC))
    except ConnectorError as err:
        return _html(refusal_page(err.message, what="Connection"), status=400)
    return redirect(url)


@routes.get(f"/connectors/{NAME}/callback")
async def callback(request: web.Request) -> web.Response:
    """Back from the service's consent page with a code (or a refusal)."""
    who = await require(request, request.app[DB])
    service, name = request.app[SERVICE], request.match_info["name"]
    query = request.query
    if "error" in query:
        return _html(refusal_page(f"{name} access was not granted", what="Connection"),
                     status=400)
    now = datetime.now(UTC)
    try:
        await service.finish(who.user_id, name, query.get("state", ""),
                             query.get("code", "")[:2048], now)
    except ConnectorError as err:
        log.info("%s connection refused for %s: %s", name, who.user_id, err.message)
        return _html(refusal_page(err.message, what="Connection"), status=400)
    try:
        await service.sync(who.user_id, name, now)
    except ConnectorError as err:  # connected all the same; the next round syncs
        log.warning("%s first sync for %s failed: %s", name, who.user_id, err.message)
    return redirect("/connectors?done=connected")


@routes.post(f"/connectors/{NAME}/disconnect")
async def disconnect(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])
    result = await request.app[SERVICE].disconnect(who.user_id, request.match_info["name"])
    return redirect("/connectors?done=" + ("disconnected" if result.revoked or not result.existed
                                          else "wiped"))
