"""The Todoist connector: OAuth 2, incremental reads by sync token, completing tasks.

Todoist's API v1 (todoist.com/api/v1/docs), the successor of Sync API v9
with the same sync model:

- OAuth: the person approves at `{auth}/oauth/authorize` (scope
  `data:read_write`); the code is exchanged at `{auth}/oauth/access_token`;
  `{api}/api/v1/access_tokens/revoke` forgets the grant. Todoist's tokens do
  not expire; if a token response carries `expires_in` and `refresh_token`,
  the standard refresh grant is used.
- Reads: `{api}/api/v1/sync` with `sync_token` (`*` the first time, then the
  token of the last answer: only what changed since) and
  `resource_types=["items"]`. The sync token is the connector's cursor.
- Acts: an `item_close` command whose `uuid` is derived from the feedback
  event, so a retried command is applied once.

`task_signal` (pure) turns an item into a `TaskChanged` for oo.signals.tasks.
Task ids are `todoist:<item id>`, so a todo tip's id names its connector.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from adapters.connectors import (
    Answer,
    AuthorizationLost,
    Complete,
    ConnectorRefused,
    ConnectorUnavailable,
    Grant,
    OutboundHttp,
    SignalBatch,
)
from adapters.credentials import Tokens
from topics.records import TaskChanged

NAME = "todoist"
SCOPES: tuple[str, ...] = ("data:read_write",)
SOURCE = "todoist"


def _zone(name: str | None, fallback: str) -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def due_at(due: Any, time_zone: str) -> datetime | None:
    """When a Todoist `due` falls, in UTC.

    A date without a time is due by the end of that day in the person's time
    zone; a floating time is in the due's own time zone, else the person's; a
    time ending in Z is UTC already.
    """
    if not isinstance(due, dict) or not isinstance(due.get("date"), str):
        return None
    text = due["date"]
    try:
        if "T" not in text:
            day = datetime.fromisoformat(text).date()
            local = datetime.combine(day, time(23, 59), _zone(None, time_zone))
            return local.astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(due.get("timezone"), time_zone))
    return moment.astimezone(UTC)


def task_signal(item: dict[str, Any], *, user_id: str, full_sync: bool, now: datetime,
                time_zone: str) -> TaskChanged | None:
    """The signal for one item of a sync answer (None for what a first sync need not say)."""
    item_id = str(item.get("id") or "")
    if not item_id:
        return None
    deleted, checked = bool(item.get("is_deleted")), bool(item.get("checked"))
    if full_sync and (deleted or checked):
        return None  # nothing to forget yet: the first read lists open tasks only
    change = ("deleted" if deleted else "completed" if checked
              else "created" if full_sync else "updated")
    content = str(item.get("content") or "").strip()[:500] or None
    priority = item.get("priority")
    priority = priority if isinstance(priority, int) and 1 <= priority <= 4 else 1
    due = due_at(item.get("due"), time_zone)
    # The same state of the same item always makes the same event id: a sync
    # repeated after a crash is recognised downstream as a repeat.
    fingerprint = orjson.dumps([item_id, change, content, due.isoformat() if due else None,
                                priority, item.get("updated_at")])
    event_id = "todoist-" + hashlib.sha256(fingerprint).hexdigest()[:40]
    return TaskChanged(event_id=event_id, user_id=user_id, occurred_at=now, source=SOURCE,
                       change=change, task_id=f"{NAME}:{item_id}"[:128], title=content,  # type: ignore[arg-type]
                       due_at=due, priority=priority)


class TodoistConnector:
    """Todoist behind the `Connector` interface (adapters/connectors.py)."""

    name = NAME
    title = "Todoist"
    scopes: tuple[str, ...] = SCOPES

    def __init__(self, http: OutboundHttp, *, client_id: str, client_secret: str,
                 auth_url: str = "https://todoist.com",
                 api_url: str = "https://api.todoist.com") -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self.auth_url = auth_url.rstrip("/")
        self.api_url = api_url.rstrip("/")

    def __repr__(self) -> str:
        return f"TodoistConnector(client_id={self._client_id!r}, api_url={self.api_url!r})"

    def begin_oauth(self, state: str, redirect_uri: str) -> str:
        # Todoist sends the person back to the redirect URL configured for the app.
        query = urlencode({"client_id": self._client_id, "scope": ",".join(SCOPES),
                           "state": state})
        return f"{self.auth_url}/oauth/authorize?{query}"

    async def finish_oauth(self, code: str, redirect_uri: str, now: datetime) -> Grant:
        answer = await self._http.request("POST", f"{self.auth_url}/oauth/access_token", data={
            "client_id": self._client_id, "client_secret": self._client_secret, "code": code,
            "redirect_uri": redirect_uri})
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict):
            raise ConnectorRefused(f"Todoist refused the authorization code (HTTP {answer.status})")
        try:
            tokens = Tokens.from_token_response(data, now)
        except ValueError:
            raise ConnectorRefused("Todoist's answer had no access token") from None
        return Grant(tokens, SCOPES)

    async def refresh(self, tokens: Tokens, now: datetime) -> Tokens:
        if not tokens.refresh_token:
            raise AuthorizationLost("Todoist's access has expired; connect Todoist again")
        answer = await self._http.request("POST", f"{self.auth_url}/oauth/access_token", data={
            "grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
            "client_id": self._client_id, "client_secret": self._client_secret})
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict):
            raise AuthorizationLost("Todoist no longer accepts oO's access; connect Todoist again")
        try:
            return Tokens.from_token_response(data, now, previous=tokens)
        except ValueError:
            raise AuthorizationLost("Todoist's refresh answer had no access token") from None

    async def _sync(self, tokens: Tokens, form: dict[str, str], *, retry: bool = True) -> Any:
        answer = await self._http.request(
            "POST", f"{self.api_url}/api/v1/sync", data=form, retry=retry,
            headers={"Authorization": f"Bearer {tokens.access_token}"})
        if answer.status in (401, 403):
            raise AuthorizationLost("Todoist no longer accepts oO's access; connect Todoist again")
        data = _json(answer)
        if answer.status != 200 or not isinstance(data, dict):
            raise ConnectorUnavailable(f"Todoist's sync answered HTTP {answer.status}")
        return data

    async def fetch_signals(self, user_id: str, tokens: Tokens, cursor: str | None, *,
                            now: datetime, time_zone: str) -> SignalBatch:
        data = await self._sync(tokens, {"sync_token": cursor or "*",
                                         "resource_types": '["items"]'})
        full = bool(data.get("full_sync", cursor is None))
        items = data.get("items") if isinstance(data.get("items"), list) else []
        signals = [task_signal(item, user_id=user_id, full_sync=full, now=now,
                               time_zone=time_zone)
                   for item in items if isinstance(item, dict)]
        next_cursor = data.get("sync_token")
        return SignalBatch(tuple(s for s in signals if s is not None),
                           next_cursor if isinstance(next_cursor, str) else cursor)

    async def act(self, tokens: Tokens, action: Complete) -> None:
        command = {"type": "item_close", "uuid": action.idempotency_key,
                   "args": {"id": action.item_id}}
        data = await self._sync(tokens, {"commands": orjson.dumps([command]).decode()})
        status = (data.get("sync_status") or {}).get(action.idempotency_key)
        if status != "ok":
            error = status.get("error") if isinstance(status, dict) else None
            raise ConnectorRefused(f"Todoist did not complete the task ({error or 'no status'})")

    async def revoke(self, tokens: Tokens) -> None:
        answer = await self._http.request(
            "POST", f"{self.api_url}/api/v1/access_tokens/revoke", json={
                "client_id": self._client_id, "client_secret": self._client_secret,
                "access_token": tokens.access_token})
        if answer.status not in (200, 204):
            raise ConnectorRefused(f"Todoist refused the revocation (HTTP {answer.status})")


def _json(answer: Answer) -> Any:
    try:
        return orjson.loads(answer.body) if answer.body else None
    except orjson.JSONDecodeError:
        return None

