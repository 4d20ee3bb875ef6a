"""Connector credentials in PostgreSQL, sealed by the vault.

One row per (person, connector) in `credentials`: the tokens sealed as one
SecretBox value (adapters/vault.py) with the id of the sealing key, the
granted scopes, and the connector's sync cursor (a position at the source,
not a secret). Plaintext tokens exist only in memory, in `Tokens`, whose repr
hides them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import asyncpg
import orjson

from adapters.vault import Sealed, Vault, VaultError

EXPIRY_MARGIN = timedelta(seconds=60)  # refresh a little before the provider says it expires


@dataclass(frozen=True, slots=True)
class Tokens:
    """An OAuth grant's tokens (hidden from repr, logs and errors)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    token_type: str = "Bearer"

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at - EXPIRY_MARGIN

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "access_token": self.access_token, "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "token_type": self.token_type})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Tokens:
        data = orjson.loads(raw)
        expires = data.get("expires_at")
        return cls(data["access_token"], data.get("refresh_token"),
                   datetime.fromisoformat(expires) if expires else None,
                   data.get("token_type") or "Bearer")

    @classmethod
    def from_token_response(cls, data: dict[str, object], now: datetime,
                            previous: Tokens | None = None) -> Tokens:
        """Tokens from an OAuth token endpoint's JSON (RFC 6749 section 5.1).

        A refresh response without a new refresh token keeps the previous one.
        """
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token response has no access_token")
        refresh = data.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            refresh = previous.refresh_token if previous else None
        expires_in = data.get("expires_in")
        expires_at = (now + timedelta(seconds=float(expires_in))
                      if isinstance(expires_in, int | float) and expires_in > 0 else None)
        token_type = data.get("token_type")
        return cls(access, refresh, expires_at,
                   token_type if isinstance(token_type, str) and token_type else "Bearer")


@dataclass(frozen=True, slots=True)
class Credential:
    """A person's connection to one connector."""

    user_id: uuid.UUID
    connector: str
    tokens: Tokens = field(repr=False)
    scopes: tuple[str, ...]
    cursor: str | None
    key_id: str
    created_at: datetime


Executor: TypeAlias = asyncpg.Connection | asyncpg.Pool


class CredentialStore:
    """Reads and writes `credentials`; every token goes through the vault."""

    def __init__(self, pool: asyncpg.Pool, vault: Vault) -> None:
        self._pool = pool
        self.vault = vault

    async def save(self, user_id: uuid.UUID, connector: str, tokens: Tokens,
                   scopes: tuple[str, ...], conn: Executor | None = None) -> None:
        """Store a new grant (replacing an earlier one, whose cursor is forgotten)."""
        sealed = self.vault.seal(tokens.to_bytes())
        await (conn or self._pool).execute(
            """INSERT INTO credentials (user_id, connector, key_id, ciphertext, scopes)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (user_id, connector) DO UPDATE SET key_id = excluded.key_id,
                   ciphertext = excluded.ciphertext, scopes = excluded.scopes, cursor = NULL,
                   updated_at = now()""",
            user_id, connector, sealed.key_id, sealed.ciphertext, list(scopes))

    async def replace_tokens(self, user_id: uuid.UUID, connector: str, tokens: Tokens) -> bool:
        """New tokens for an existing grant (after a refresh); False if it was disconnected."""
        sealed = self.vault.seal(tokens.to_bytes())
        return bool(await self._pool.fetchval(
            """UPDATE credentials SET key_id = $3, ciphertext = $4, updated_at = now()
               WHERE user_id = $1 AND connector = $2 RETURNING true""",
            user_id, connector, sealed.key_id, sealed.ciphertext))

    async def get(self, user_id: uuid.UUID, connector: str) -> Credential | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM credentials WHERE user_id = $1 AND connector = $2", user_id, connector)
        return self._credential(row) if row is not None else None

    async def of_user(self, user_id: uuid.UUID) -> list[Credential]:
        rows = await self._pool.fetch(
            "SELECT * FROM credentials WHERE user_id = $1 ORDER BY connector", user_id)
        return [self._credential(r) for r in rows]

    async def connections(self, user_id: uuid.UUID) -> dict[str, tuple[tuple[str, ...], datetime]]:
        """Connector name -> (scopes, connected at), without opening any token."""
        rows = await self._pool.fetch(
            "SELECT connector, scopes, created_at FROM credentials WHERE user_id = $1", user_id)
        return {r["connector"]: (tuple(r["scopes"]), r["created_at"]) for r in rows}

    async def pending_sync(self, connector: str, limit: int = 500) -> list[uuid.UUID]:
        """People connected to `connector`, least recently synced first."""
        rows = await self._pool.fetch(
            """SELECT user_id FROM credentials WHERE connector = $1
               ORDER BY updated_at LIMIT $2""", connector, limit)
        return [r["user_id"] for r in rows]

    async def set_cursor(self, conn: Executor, user_id: uuid.UUID, connector: str,
                         cursor: str | None) -> None:
        await conn.execute(
            """UPDATE credentials SET cursor = $3, updated_at = now()
               WHERE user_id = $1 AND connector = $2""", user_id, connector, cursor)

    async def delete(self, user_id: uuid.UUID, connector: str,
                     conn: Executor | None = None) -> bool:
        return bool(await (conn or self._pool).fetchval(
            "DELETE FROM credentials WHERE user_id = $1 AND connector = $2 RETURNING true",
            user_id, connector))

    async def rotate(self, batch: int = 200) -> tuple[int, int]:
        """Re-seal every row not under the current key; (re-sealed, left under other keys).

        Rows are re-sealed in batches, each row locked while it is read and
        written, so a refresh at the same moment is never overwritten with old
        tokens. A row whose key is no longer configured is left and counted.
        """
        current = self.vault.current_key_id
        resealed = 0
        skipped: set[int] = set()
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    """SELECT id, key_id, ciphertext FROM credentials
                       WHERE key_id <> $1 AND NOT (id = ANY($2::bigint[]))
                       ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED""",
                    current, list(skipped), batch)
                if not rows:
                    break
                for row in rows:
                    try:
                        sealed = self.vault.reseal(Sealed(row["key_id"], bytes(row["ciphertext"])))
                    except VaultError:  # its key is gone or it was tampered with: reported
                        skipped.add(row["id"])
                        continue
                    await conn.execute(
                        "UPDATE credentials SET key_id = $2, ciphertext = $3 WHERE id = $1",
                        row["id"], sealed.key_id, sealed.ciphertext)
                    resealed += 1
        left = await self._pool.fetchval(
            "SELECT count(*) FROM credentials WHERE key_id <> $1", current)
        return resealed, int(left)

    def _credential(self, row: asyncpg.Record) -> Credential:
        tokens = Tokens.from_bytes(self.vault.open(Sealed(row["key_id"], bytes(row["ciphertext"]))))
        return Credential(row["user_id"], row["connector"], tokens, tuple(row["scopes"]),
                          row["cursor"], row["key_id"], row["created_at"].astimezone(UTC))
