"""PostgreSQL adapter for ingest tokens and ingested signals.

A token is 32 random bytes shown once at creation; only its SHA-256 is stored.
Each token is scoped to signal domains, and may have an expiry after which it
is refused like a revoked one. An accepted batch is one transaction:
its new events go to the outbox (adapters/outbox.py) and their ids into
`ingested_events`, so a replayed event id is accepted once and a batch is
never half-applied.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from adapters import outbox
from topics.catalog import SIGNALS
from topics.records import Event

TOKEN_PREFIX = "oo_it_"
REMEMBER_EVENT_IDS = timedelta(days=30)  # a replay older than this is a new event


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who an ingest token speaks for, and what it may send."""

    token_id: uuid.UUID
    user_id: uuid.UUID
    domains: frozenset[str]


# Why a presented token opens nothing: never seen (or revoked), or past its expiry.
Refused = Literal["unknown", "expired"]


@dataclass(frozen=True, slots=True)
class Ingested:
    accepted: int
    duplicates: int


class IngestStore:
    """Tokens and batches; the pool is given."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create_token(self, user_id: uuid.UUID, name: str, domains: list[str],
                           expires_at: datetime | None = None) -> tuple[dict[str, Any], str]:
        """A new token: its listing, and the token itself (returned this once only).

        `expires_at` (None: until revoked) must be after now (the table checks it).
        """
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = await self._pool.fetchrow(
            f"""INSERT INTO ingest_tokens (user_id, name, token_hash, domains, expires_at)
               VALUES ($1, $2, $3, $4, $5) RETURNING {_LISTED}""",
            user_id, name, token_hash(token), domains, expires_at)
        return _listing(row), token

    async def tokens(self, user_id: uuid.UUID) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            f"""SELECT {_LISTED} FROM ingest_tokens
               WHERE user_id = $1 ORDER BY created_at""", user_id)
        return [_listing(r) for r in rows]

    async def revoke(self, user_id: uuid.UUID, token_id: uuid.UUID) -> bool:
        revoked = await self._pool.fetchval(
            """UPDATE ingest_tokens SET revoked_at = coalesce(revoked_at, now())
               WHERE id = $1 AND user_id = $2 RETURNING true""", token_id, user_id)
        return bool(revoked)

    async def owner(self, token: str) -> TokenOwner | Refused:
        """The live token's owner, or why it is refused ("unknown" also for revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return "unknown"
        digest = token_hash(token)
        row = await self._pool.fetchrow(
            """UPDATE ingest_tokens SET last_used_at = now()
               WHERE token_hash = $1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > now())
               RETURNING id, user_id, domains""", digest)
        if row is not None:
            return TokenOwner(row["id"], row["user_id"], frozenset(row["domains"]))
        # Only a refusal asks again (to say "expired" to the token's holder, who knows it).
        expired = await self._pool.fetchval(
            "SELECT true FROM ingest_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            digest)
        return "expired" if expired else "unknown"

    async def ingest(self, user_id: uuid.UUID, records: list[tuple[str, Event]],
                     now: datetime) -> Ingested:
        """Queue the batch's new events in order, in one transaction."""
        accepted = 0
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM ingested_events WHERE user_id = $1 AND accepted_at < $2",
                               user_id, now - REMEMBER_EVENT_IDS)
            for domain, record in records:
                new = await conn.fetchval(
                    """INSERT INTO ingested_events (user_id, event_id, accepted_at)
                       VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true""",
                    user_id, record.event_id, now)
                if new:
                    await outbox.add(conn, SIGNALS[domain], record)
                    accepted += 1
        return Ingested(accepted, len(records) - accepted)


_LISTED = ("id, name, domains, created_at, last_used_at, revoked_at, expires_at, "
           "coalesce(expires_at <= now(), false) AS expired")


def _listing(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": str(row["id"]), "name": row["name"], "domains": list(row["domains"]),
            "created_at": row["created_at"].isoformat(),
            "last_used_at": row["last_used_at"].isoformat() if row["last_used_at"] else None,
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
            "revoked": row["revoked_at"] is not None, "expired": row["expired"]}
