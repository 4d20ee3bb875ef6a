"""A local Todoist for the connector tests: the parts of Todoist's API oO uses.

Written to Todoist's documented API v1 (todoist.com/api/v1/docs):

- OAuth: `GET /oauth/authorize?client_id&scope&state` (the person approves;
  Todoist then redirects to the app's configured OAuth redirect URL with
  `code` and `state`, or `error=access_denied`), `POST /oauth/access_token`
  (client_id, client_secret, code; form or JSON) answering
  `{"access_token", "token_type": "Bearer"}`, and
  `POST /api/v1/access_tokens/revoke` (client_id, client_secret, access_token)
  answering 204.
- Sync: `POST /api/v1/sync` with `Authorization: Bearer`, form fields
  `sync_token` (`*` for everything, else the token of the last answer: only
  what changed since), `resource_types` (JSON list, `items` or `all`) and
  `commands` (JSON list; `item_close` with `uuid` and `args.id`; a repeated
  `uuid` is not applied twice). Items carry id, content, description,
  priority (1-4), due (date, timezone, string, lang, is_recurring), checked,
  is_deleted, added_at, updated_at, completed_at.

Beyond Todoist, for tests only: the person who approves (`approve_as`),
denial (`deny_next`), injected failures (`fail_next`) and slowness
(`delay_s`), and tokens that
expire with a refresh token (`expiring_tokens`, with the standard OAuth 2
`grant_type=refresh_token` at the token endpoint): Todoist's tokens do not
expire, but oO's vault must refresh other connectors' tokens transparently.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import port

PORT = port(28710)
SCOPES = {"task:add", "data:read", "data:read_write", "data:delete", "project:delete",
          "backups:read"}


@dataclass
class Item:
    id: str
    content: str
    priority: int = 1
    due: dict[str, Any] | None = None
    description: str = ""
    checked: bool = False
    is_deleted: bool = False
    added_at: str = ""
    updated_at: str = ""
    completed_at: str | None = None
    seq: int = 0  # change sequence, for incremental sync

    def view(self, account: str) -> dict[str, Any]:
        return {"id": self.id, "user_id": account, "project_id": "inbox", "section_id": None,
                "parent_id": None, "content": self.content, "description": self.description,
                "priority": self.priority, "due": self.due, "deadline": None, "labels": [],
                "checked": self.checked, "is_deleted": self.is_deleted, "child_order": 1,
                "added_at": self.added_at, "updated_at": self.updated_at,
                "completed_at": self.completed_at}


@dataclass
class Grant:
    account: str
    client_id: str
    scope: str
    expires_at: float | None = None


@dataclass
class Account:
    items: dict[str, Item] = field(default_factory=dict)
    seq: int = 0
    done_commands: set[str] = field(default_factory=set)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LocalTodoist:
    """The server's state and handlers; `app()` serves them."""

    def __init__(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.client_id, self.client_secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self.accounts: dict[str, Account] = {}
        self.codes: dict[str, Grant] = {}
        self.tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.revoked: list[str] = []
        self.approve_as = "todoist-person"
        self.deny_next = False
        self.expiring_tokens: float | None = None  # seconds a token lives (tests of refresh)
        self.failures: list[int] = []  # statuses to answer the next requests with
        self.delay_s = 0.0  # answer this much later (timeouts)
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request

    # --- test controls -----------------------------------------------------------------

    def account(self, name: str) -> Account:
        return self.accounts.setdefault(name, Account())

    def add_item(self, account: str, content: str, *, priority: int = 1,
                 due: dict[str, Any] | None = None) -> Item:
        acc = self.account(account)
        acc.seq += 1
        item = Item(id=secrets.token_hex(8), content=content, priority=priority, due=due,
                    added_at=_now(), updated_at=_now(), seq=acc.seq)
        acc.items[item.id] = item
        return item

    def change(self, account: str, item_id: str, **fields: Any) -> None:
        acc = self.account(account)
        acc.seq += 1
        item = acc.items[item_id]
        for name, value in fields.items():
            setattr(item, name, value)
        item.updated_at, item.seq = _now(), acc.seq

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def token_for(self, account: str) -> str:
        """An access token granted by `account` (as if they had approved oO)."""
        return str(self._issue(Grant(account, self.client_id, "data:read_write"))["access_token"])

    def live_tokens_of(self, account: str) -> list[str]:
        return [t for t, g in self.tokens.items() if g.account == account]

    # --- OAuth -------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.json_response({"error": "invalid client_id"}, status=400)
        scope = q.get("scope", "")
        if not scope or not set(scope.split(",")) <= SCOPES:
            return web.json_response({"error": "invalid scope"}, status=400)
        if not q.get("state"):
            return web.json_response({"error": "state is required"}, status=400)
        if self.deny_next:
            self.deny_next = False
            target = {"error": "access_denied", "state": q["state"]}
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = Grant(self.approve_as, self.client_id, scope)
            target = {"code": code, "state": q["state"]}
        raise web.HTTPFound(f"{self.redirect_uri}?{urlencode(target)}")

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            data = orjson.loads(await request.read() or b"{}")
            return data if isinstance(data, dict) else {}
        return dict(await request.post())

    def _issue(self, grant: Grant) -> dict[str, Any]:
        token = secrets.token_hex(20)
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expiring_tokens is not None:
            grant = Grant(grant.account, grant.client_id, grant.scope,
                          time.time() + self.expiring_tokens)
            refresh = secrets.token_hex(20)
            self.refresh_tokens[refresh] = grant
            answer |= {"expires_in": self.expiring_tokens, "refresh_token": refresh}
        self.tokens[token] = grant
        return answer

    async def access_token(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("client_id") != self.client_id or p.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid client"}, status=400)
        if p.get("grant_type") == "refresh_token":
            grant = self.refresh_tokens.pop(str(p.get("refresh_token")), None)
            if grant is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return web.json_response(self._issue(grant))
        grant = self.codes.pop(str(p.get("code")), None)
        if grant is None:
            return web.json_response({"error": "bad_authorization_code"}, status=400)
        return web.json_response(self._issue(grant))

    async def revoke(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        if p.get("client_id") != self.client_id or p.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid client"}, status=401)
        token = str(p.get("access_token"))
        grant = self.tokens.pop(token, None)
        if grant is not None:
            self.revoked.append(token)
            for refresh, g in list(self.refresh_tokens.items()):
                if g.account == grant.account:
                    del self.refresh_tokens[refresh]
        return web.Response(status=204)

    # --- Sync API ----------------------------------------------------------------------

    def _bearer(self, request: web.Request) -> Grant | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        grant = self.tokens.get(header[7:])
        if grant is None or (grant.expires_at is not None and grant.expires_at < time.time()):
            return None
        return grant

    async def sync(self, request: web.Request) -> web.Response:
        grant = self._bearer(request)
        if grant is None:
            return web.json_response({"error": "Unauthorized", "error_code": 401}, status=401)
        p = await self._params(request)
        acc = self.account(grant.account)
        statuses: dict[str, Any] = {}
        for command in orjson.loads(p.get("commands") or "[]"):
            statuses[command["uuid"]] = self._command(acc, command)
        token = str(p.get("sync_token") or "*")
        types = orjson.loads(p.get("resource_types") or "[]")
        answer: dict[str, Any] = {"full_sync": token == "*", "temp_id_mapping": {}}
        if statuses:
            answer["sync_status"] = statuses
        if types:
            since = 0 if token == "*" else int(token.removeprefix("s"))
            if "items" in types or "all" in types:
                answer["items"] = [i.view(grant.account) for i in acc.items.values()
                                   if i.seq > since and (token != "*" or not
                                                         (i.checked or i.is_deleted))]
            answer["sync_token"] = f"s{acc.seq}"
        return web.json_response(answer)

    def _command(self, acc: Account, command: dict[str, Any]) -> Any:
        if command["uuid"] in acc.done_commands:
            return "ok"  # a retried command is not applied twice
        if command.get("type") != "item_close":
            return {"error_code": 22, "error": "Invalid command type"}
        item = acc.items.get(str(command.get("args", {}).get("id")))
        if item is None or item.is_deleted:
            return {"error_code": 22, "error": "Item not found"}
        acc.seq += 1
        item.checked, item.completed_at = True, _now()
        item.updated_at, item.seq = _now(), acc.seq
        acc.done_commands.add(command["uuid"])
        return "ok"

    # --- the server --------------------------------------------------------------------

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.failures:
            status = self.failures.pop(0)
            headers = {"Retry-After": "0"} if status == 429 else {}
            return web.json_response({"error": "injected", "error_code": status}, status=status,
                                     headers=headers)
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.router.add_get("/oauth/authorize", self.authorize)
        app.router.add_post("/oauth/access_token", self.access_token)
        app.router.add_post("/api/v1/access_tokens/revoke", self.revoke)
        app.router.add_post("/api/v1/sync", self.sync)
        return app


@pytest.fixture
async def todoist() -> AsyncIterator[LocalTodoist]:
    """A fresh local Todoist on its port; set `redirect_uri` to the app's callback."""
    peer = LocalTodoist("oo-todoist-test", secrets.token_hex(16),
                        "http://127.0.0.1/connectors/todoist/callback")
    async with TestServer(peer.app(), host="127.0.0.1", port=PORT):
        yield peer


BASE = f"http://127.0.0.1:{PORT}"
