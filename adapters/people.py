"""PostgreSQL adapter for what the web reads and changes for one person.

Every change that other parts must hear of writes its event to the outbox in
the same transaction (adapters/outbox.py) and wakes the person's open pages
(adapters/tips.notify_tips_changed).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from adapters import outbox
from adapters.endpoints import PushSubscription
from adapters.tips import OPEN_STATUSES, notify_tips_changed
from domain.reactions import Apply, Outcome, Refuse, Repeat, react
from topics.catalog import FEEDBACK, SIGNALS
from topics.records import ContextObserved, FeedbackGiven, LifecycleChanged

SOURCE = "web"

_CURRENT = """
SELECT decision_id, tip_id, kind, title, body, deep_link, decided_at, expires_at, status, reason
FROM tip_instances
WHERE user_id = $1 AND status = ANY($2::text[]) AND (expires_at IS NULL OR expires_at > $3)
ORDER BY decided_at DESC
LIMIT 1
"""


def tip_view(row: asyncpg.Record) -> dict[str, Any]:
    """A tip instance as the page and the API show it."""
    return {
        "decision_id": row["decision_id"], "tip_id": row["tip_id"], "kind": row["kind"],
        "title": row["title"], "body": row["body"], "deep_link": row["deep_link"],
        "decided_at": row["decided_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
        "reason": row["reason"],
    }


@dataclass(frozen=True, slots=True)
class Reacted:
    """What recording a reaction did: the outcome, or None if there is no such tip."""

    outcome: Outcome | None


class People:
    """Queries and changes for one signed-in person; the pool is given."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def current_tip(self, user_id: uuid.UUID, now: datetime) -> dict[str, Any] | None:
        """The newest open, unexpired tip, or None."""
        row = await self._pool.fetchrow(_CURRENT, user_id, list(OPEN_STATUSES), now)
        return tip_view(row) if row is not None else None

    async def react(self, user_id: uuid.UUID, decision_id: str, reaction: str, *,
                    snooze_until: datetime | None, dwell_ms: int | None, now: datetime,
                    event_id: str) -> Reacted:
        """Apply a reaction and queue its feedback event, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT tip_id, kind, status, expires_at FROM tip_instances "
                "WHERE decision_id = $1 AND user_id = $2 FOR UPDATE", decision_id, user_id)
            if row is None:
                return Reacted(None)
            outcome = react(status=row["status"], kind=row["kind"], expires_at=row["expires_at"],
                            reaction=reaction, snooze_until=snooze_until, now=now)
            if isinstance(outcome, Repeat | Refuse):
                return Reacted(outcome)
            assert isinstance(outcome, Apply)
            await conn.execute(
                """UPDATE tip_instances SET status = $2, snooze_until = $3,
                       reacted_at = CASE WHEN $2 = 'seen' THEN reacted_at ELSE $4 END
                   WHERE decision_id = $1""", decision_id, outcome.status, snooze_until, now)
            await outbox.add(conn, FEEDBACK, FeedbackGiven(
                event_id=event_id, user_id=str(user_id), occurred_at=now, source=SOURCE,
                decision_id=decision_id, tip_id=row["tip_id"], reaction=reaction,  # type: ignore[arg-type]
                dwell_ms=dwell_ms, snooze_until=snooze_until))
            if outcome.status != "seen":
                await notify_tips_changed(conn, user_id)
        return Reacted(outcome)

    async def observe(self, user_id: uuid.UUID, kind: str, device: str | None, now: datetime,
                      event_id: str) -> None:
        """A context signal from the page (opened, visible, hidden)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, SIGNALS["context"], ContextObserved(
                event_id=event_id, user_id=str(user_id), occurred_at=now, source=SOURCE,
                kind=kind, device=device))  # type: ignore[arg-type]

    async def preferences(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            "SELECT time_zone, preferences::text AS preferences FROM users WHERE id = $1", user_id)
        if row is None:
            return None
        return {"time_zone": row["time_zone"], **json.loads(row["preferences"])}

    async def set_preferences(self, user_id: uuid.UUID, change: LifecycleChanged,
                              stored: dict[str, Any]) -> dict[str, Any]:
        """Merge `stored` into the person's preferences and queue `change`, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            tz = stored.pop("time_zone", None)
            row = await conn.fetchrow(
                """UPDATE users SET time_zone = coalesce($2, time_zone),
                       preferences = preferences || $3::jsonb
                   WHERE id = $1 RETURNING time_zone, preferences::text AS preferences""",
                user_id, tz, json.dumps(stored))
            await outbox.add(conn, SIGNALS["lifecycle"], change)
        return {"time_zone": row["time_zone"], **json.loads(row["preferences"])}

    async def subscribe(self, user_id: uuid.UUID, sub: PushSubscription,
                        user_agent: str | None) -> uuid.UUID | None:
        """Store a device's push subscription; None if it belongs to someone else.

        The same person re-subscribing updates the row. An endpoint already
        registered by another person moves only when the keys match too (the
        same browser, now signed in as someone else): knowing a victim's endpoint
        URL is not enough to take their notifications over.
        """
        return await self._pool.fetchval(
            """INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, user_agent)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id,
                   p256dh = excluded.p256dh, auth = excluded.auth,
                   user_agent = excluded.user_agent, failure_count = 0
               WHERE push_subscriptions.user_id = excluded.user_id
                  OR (push_subscriptions.p256dh = excluded.p256dh
                      AND push_subscriptions.auth = excluded.auth)
               RETURNING id""", user_id, sub.endpoint, sub.p256dh, sub.auth,
            (user_agent or "")[:300] or None)

    async def unsubscribe(self, user_id: uuid.UUID, endpoint: str) -> bool:
        deleted = await self._pool.fetchval(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2 RETURNING true",
            user_id, endpoint)
        return bool(deleted)

    async def me(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            """SELECT u.id, u.created_at, u.display_name,
                      (SELECT count(*) FROM push_subscriptions s WHERE s.user_id = u.id) AS devices
               FROM users u WHERE u.id = $1""", user_id)
        if row is None:
            return None
        return {"id": str(row["id"]), "created_at": row["created_at"].isoformat(),
                "display_name": row["display_name"], "devices": row["devices"],
                "preferences": await self.preferences(user_id)}

    async def delete(self, user_id: uuid.UUID, now: datetime, event_id: str) -> bool:
        """Delete everything about the person and queue the deletion event, in one transaction.

        Sessions, devices (push subscriptions), tips and their deliveries, consents,
        connector credentials (revoke them at the services first: ConnectorService.forget),
        ingest tokens and OAuth attempts go with the user row; events of theirs still
        waiting in the outbox are dropped, so the only trace left is the deletion event
        itself, until the relay has published it.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval("DELETE FROM users WHERE id = $1 RETURNING true", user_id)
            if not deleted:
                return False
            await conn.execute("DELETE FROM outbox WHERE key = $1 AND published_at IS NULL",
                               str(user_id))
            await outbox.add(conn, SIGNALS["lifecycle"], LifecycleChanged(
                event_id=event_id, user_id=str(user_id), occurred_at=now, source=SOURCE,
                change="deletion_requested"))
            await notify_tips_changed(conn, user_id)
        return True
