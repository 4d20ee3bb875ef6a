"""PostgreSQL adapter for tip instances, push subscriptions and the delivery log.

The delivery log (`push_deliveries`, keyed by decision and subscription) is
what makes a push go out at most once per device per decision: a decision is
recorded with one `pending` row per subscription in one transaction, and only
rows still `pending` are sent. A redelivered decision finds its rows already
`sent`, `gone` or `failed` and sends nothing again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from topics.records import TipDecided

OPEN_STATUSES = ("pending", "delivered", "seen")
# The tip instance status an answer (or its absence) leaves.
CLOSED_STATUS = {"done": "done", "ack": "ack", "save": "saved", "snooze": "snoozed",
                 "dismiss": "dismissed", "ignored": "ignored"}
TIPS_CHANNEL = "oo_tips"  # NOTIFY channel: a person's tips changed (payload: the user id)


async def notify_tips_changed(conn: asyncpg.Connection, user_id: uuid.UUID | str) -> None:
    """Wake open pages of `user_id` (web/live.py); sent when the transaction commits.

    The payload is the id only, never the tip: pages read their tip themselves.
    """
    await conn.execute("SELECT pg_notify($1, $2)", TIPS_CHANNEL, str(user_id))


@dataclass(frozen=True, slots=True)
class PendingPush:
    """One push still to send: a decision to one subscription."""

    decision_id: str
    subscription_id: uuid.UUID
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording a decision did, and what it still owes the person's devices.

    `pending` and `withdrawals` are returned on every call, a repeat included, until
    each is marked: a decision redelivered after a crash finishes what the first
    delivery started, and sends nothing twice.
    """

    known_user: bool
    new: bool
    withdrawn: tuple[str, ...]  # decision ids of older open tips this one replaced (first time)
    pending: tuple[PendingPush, ...]
    withdrawals: tuple[PendingPush, ...] = ()  # decision_id: the older tip to close


class TipStore:
    """Tip instances and deliveries; the pool is given, never created here."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_decision(self, decided: TipDecided) -> Recorded:
        """Persist the tip instance (idempotent on decision_id) and its pending deliveries.

        A decision for a person who has no account, or whose account is deleted
        meanwhile, is not stored (`known_user` False).
        """
        try:
            return await self._record(decided)
        except asyncpg.ForeignKeyViolationError:  # the person was deleted during the insert
            return Recorded(False, False, (), ())

    async def _record(self, decided: TipDecided) -> Recorded:
        try:
            user_id = uuid.UUID(decided.user_id)
        except ValueError:
            return Recorded(False, False, (), ())
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT true FROM users WHERE id = $1", user_id):
                return Recorded(False, False, (), ())
            inserted = await conn.fetchval(_INSERT_TIP, *_tip_row(decided, user_id))
            withdrawn: list[str] = []
            if inserted:
                rows = await conn.fetch(_WITHDRAW_OLDER, user_id, decided.decision_id,
                                        decided.occurred_at, list(OPEN_STATUSES))
                withdrawn = [r["decision_id"] for r in rows]
                await conn.execute(_INSERT_WITHDRAWALS, withdrawn, decided.decision_id)
                await conn.execute(_INSERT_DELIVERIES, decided.decision_id, user_id)
                await notify_tips_changed(conn, user_id)
            pending = await conn.fetch(_PENDING, decided.decision_id)
            withdrawals = await conn.fetch(_PENDING_WITHDRAWALS, decided.decision_id)
        return Recorded(True, bool(inserted), tuple(withdrawn),
                        tuple(PendingPush(**dict(r)) for r in pending),
                        tuple(PendingPush(**dict(r)) for r in withdrawals))

    async def mark(self, decision_id: str, subscription_id: uuid.UUID, status: str,
                   attempts: int, error: str | None = None) -> None:
        """Record the outcome of one push (sent, failed or gone)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE push_deliveries SET status = $3, attempts = attempts + $4,
                       last_error = $5, updated_at = now()
                   WHERE decision_id = $1 AND subscription_id = $2""",
                decision_id, subscription_id, status, attempts, error)
            if status == "sent":
                await conn.execute(
                    """UPDATE push_subscriptions SET last_success_at = now(), failure_count = 0
                       WHERE id = $1""", subscription_id)
                await conn.execute(
                    """UPDATE tip_instances SET status = 'delivered'
                       WHERE decision_id = $1 AND status = 'pending'""", decision_id)
            elif status == "failed":
                await conn.execute(
                    "UPDATE push_subscriptions SET failure_count = failure_count + 1 WHERE id = $1",
                    subscription_id)

    async def close_answered(self, event_id: str, decision_id: str, user_id: str,
                             reaction: str) -> tuple[PendingPush, ...]:
        """A tip was answered (on some device, or at its source) or went unanswered.

        Every device it was pushed to gets one withdrawal (logged under `event_id`,
        so a redelivered feedback event sends only what is still owed; a tip already
        withdrawn by a newer one is not withdrawn twice). A tip still open takes the
        answer's status (ignored when unanswered), and open pages are told.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            # Still open means it was answered elsewhere (a task completed at its source)
            # or not at all (ignored): record that, and tell open pages.
            changed = await conn.fetchval(
                """UPDATE tip_instances SET status = $3, reacted_at = now()
                   WHERE decision_id = $1 AND status = ANY($2::text[]) RETURNING user_id""",
                decision_id, list(OPEN_STATUSES), CLOSED_STATUS.get(reaction, "ignored"))
            if changed is not None:
                await notify_tips_changed(conn, changed)
            await conn.execute(
                """INSERT INTO push_withdrawals (decision_id, subscription_id, withdrawn_by)
                   SELECT d.decision_id, d.subscription_id, $2 FROM push_deliveries d
                   WHERE d.decision_id = $1 AND d.status = 'sent'
                   ON CONFLICT DO NOTHING""", decision_id, event_id)
            owed = await conn.fetch(_PENDING_WITHDRAWALS, event_id)
        return tuple(PendingPush(**dict(r)) for r in owed)

    async def mark_withdrawal(self, decision_id: str, subscription_id: uuid.UUID, status: str,
                              attempts: int, error: str | None = None) -> None:
        """Record the outcome of one withdrawal push (sent, failed or gone)."""
        await self._pool.execute(
            """UPDATE push_withdrawals SET status = $3, attempts = attempts + $4,
                   last_error = $5, updated_at = now()
               WHERE decision_id = $1 AND subscription_id = $2""",
            decision_id, subscription_id, status, attempts, error)

    async def remove_subscription(self, subscription_id: uuid.UUID) -> None:
        """The push service said the subscription is gone (404/410): forget it."""
        await self._pool.execute("DELETE FROM push_subscriptions WHERE id = $1", subscription_id)


def _tip_row(d: TipDecided, user_id: uuid.UUID) -> tuple[Any, ...]:
    tip = d.tip
    return (d.decision_id, user_id, tip.id, tip.kind, tip.title, tip.body, tip.source,
            tip.deep_link, json.dumps(tip.meta), d.moment, d.policy, d.propensity, d.reason,
            d.triggered_by, json.dumps(d.context_snapshot), d.occurred_at, d.expires_at)


_INSERT_TIP = """
INSERT INTO tip_instances (decision_id, user_id, tip_id, kind, title, body, source, deep_link,
                           meta, moment, policy, propensity, reason, triggered_by,
                           context_snapshot, decided_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15::jsonb, $16, $17)
ON CONFLICT (decision_id) DO NOTHING
RETURNING true
"""

_WITHDRAW_OLDER = """
UPDATE tip_instances SET status = 'withdrawn', withdrawn_by = $2
WHERE user_id = $1 AND decision_id <> $2 AND decided_at <= $3 AND status = ANY($4::text[])
RETURNING decision_id
"""

_INSERT_DELIVERIES = """
INSERT INTO push_deliveries (decision_id, subscription_id)
SELECT $1, id FROM push_subscriptions WHERE user_id = $2
ON CONFLICT DO NOTHING
"""

# Close a replaced tip on each device it was (or was to be) pushed to.
_INSERT_WITHDRAWALS = """
INSERT INTO push_withdrawals (decision_id, subscription_id, withdrawn_by)
SELECT d.decision_id, d.subscription_id, $2
FROM push_deliveries d
WHERE d.decision_id = ANY($1::text[]) AND d.status <> 'gone'
ON CONFLICT DO NOTHING
"""

_PENDING_WITHDRAWALS = """
SELECT w.decision_id, s.id AS subscription_id, s.endpoint, s.p256dh, s.auth
FROM push_withdrawals w JOIN push_subscriptions s ON s.id = w.subscription_id
WHERE w.withdrawn_by = $1 AND w.status = 'pending'
ORDER BY w.decision_id, s.id
"""

_PENDING = """
SELECT d.decision_id, s.id AS subscription_id, s.endpoint, s.p256dh, s.auth
FROM push_deliveries d JOIN push_subscriptions s ON s.id = d.subscription_id
WHERE d.decision_id = $1 AND d.status = 'pending'
ORDER BY s.id
"""
