"""People's accounts in PostgreSQL: found or made at sign-in, with their consents.

A person is identified by the pair (issuer, subject) their OpenID provider
vouches for. The first sign-in makes the `users` row, records the consent to
the current terms and privacy notice (each by the SHA-256 of its exact text)
and queues a `user_created` lifecycle event, in one transaction. Later
sign-ins record a consent again only when a document changed.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from adapters import outbox
from topics.catalog import SIGNALS
from topics.records import LifecycleChanged

@dataclass(frozen=True, slots=True)
class Document:
    """A text a person accepts (terms, privacy notice); its version is the hash of the text."""

    name: str
    text: str

    @property
    def version_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    user_id: uuid.UUID
    created: bool


class Accounts:
    """Find or make the person behind an OIDC identity."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def sign_in(self, conn: asyncpg.Connection, issuer: str, subject: str,
                      name: str | None, accepted: tuple[Document, ...], now: datetime,
                      event_id: str) -> SignedIn:
        """The person's id, made on first sign-in; consents recorded. Run inside a transaction."""
        user_id = await conn.fetchval(
            """INSERT INTO users (oidc_issuer, oidc_subject, display_name) VALUES ($1, $2, $3)
               ON CONFLICT (oidc_issuer, oidc_subject) DO NOTHING RETURNING id""",
            issuer, subject, (name or "")[:200] or None)
        created = user_id is not None
        if not created:
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
                issuer, subject)
        for document in accepted:
            await conn.execute(
                """INSERT INTO consents (user_id, document, version_hash, accepted_at)
                   VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, document, version_hash) DO NOTHING""",
                user_id, document.name, document.version_hash, now)
        if created:
            await outbox.add(conn, SIGNALS["lifecycle"], LifecycleChanged(
                event_id=event_id, user_id=str(user_id), occurred_at=now, source="web",
                change="user_created"))
        return SignedIn(user_id, created)
