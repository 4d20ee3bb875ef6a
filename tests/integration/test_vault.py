"""Connector tokens at rest: sealed in PostgreSQL, re-sealed by `oo vault rotate`."""

from __future__ import annotations

import base64
import subprocess
import sys

import asyncpg
import pytest

from adapters.credentials import CredentialStore, Tokens
from adapters.vault import Vault, new_key
from tests.conftest import oo_test_environ
from tests.helpers import ROOT

pytestmark = pytest.mark.integration
OLD = ("old1", new_key())
NEW = ("new1", new_key())


def keys(*entries: tuple[str, str]) -> tuple[tuple[str, bytes], ...]:
    return tuple((kid, base64.b64decode(key)) for kid, key in entries)


async def everything_as_text(pool: asyncpg.Pool) -> str:
    """Every row of every table in the public schema, as text (bytea as hex and as raw bytes)."""
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE'")
    texts = []
    for table in tables:
        name = table["table_name"]
        rows = await pool.fetch(f'SELECT t::text AS row FROM "{name}" t')
        texts.extend(f"{name}: {r['row']}" for r in rows)
        binary = await pool.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
            "AND data_type = 'bytea'", name)
        for column in binary:
            for r in await pool.fetch(f'SELECT "{column["column_name"]}" AS b FROM "{name}"'):
                if r["b"] is not None:
                    texts.append(bytes(r["b"]).decode("latin-1"))
    return "\n".join(texts)


def oo(*args: str, vault_keys: str) -> subprocess.CompletedProcess[str]:
    env = {**oo_test_environ(), "OO_VAULT_KEYS": vault_keys}
    return subprocess.run([sys.executable, "-m", "oo", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_rotate_reseals_every_credential_under_the_new_key(pool):
    people = [await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id") for _ in range(3)]
    secrets = [f"access-{i}-Zq7pLmN3" for i in range(3)]
    try:
        old_store = CredentialStore(pool, Vault(keys(OLD)))
        for person, secret in zip(people, secrets, strict=True):
            await old_store.save(person, "todoist", Tokens(secret, "refresh-" + secret),
                                 ("data:read_write",))
        dump = await everything_as_text(pool)
        assert not [s for s in secrets if s in dump]  # nothing in plaintext anywhere

        result = oo("vault", "rotate", vault_keys=f"{NEW[0]}:{NEW[1]},{OLD[0]}:{OLD[1]}")
        assert result.returncode == 0, result.stderr
        assert "3 credentials re-sealed under key 'new1'; 0 left" in result.stdout
        assert not [s for s in secrets if s in result.stdout + result.stderr]
        rows = await pool.fetch("SELECT key_id FROM credentials WHERE user_id = ANY($1)", people)
        assert {r["key_id"] for r in rows} == {"new1"}
        # The old key can go: the new one alone opens everything.
        new_store = CredentialStore(pool, Vault(keys(NEW)))
        for person, secret in zip(people, secrets, strict=True):
            credential = await new_store.get(person, "todoist")
            assert credential is not None and credential.tokens.access_token == secret
        again = oo("vault", "rotate", vault_keys=f"{NEW[0]}:{NEW[1]}")
        assert again.returncode == 0 and "0 credentials re-sealed" in again.stdout
    finally:
        await pool.execute("DELETE FROM users WHERE id = ANY($1)", people)


async def test_rotate_says_which_rows_it_cannot_open(pool):
    person = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    try:
        await CredentialStore(pool, Vault(keys(OLD))).save(person, "todoist", Tokens("t"), ())
        result = oo("vault", "rotate", vault_keys=f"{NEW[0]}:{NEW[1]}")  # the old key was dropped
        assert result.returncode == 2
        assert "1 credentials are sealed with keys missing from OO_VAULT_KEYS" in result.stderr
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", person)


def test_new_key_prints_an_entry_the_settings_accept():
    result = oo("vault", "new-key", vault_keys=f"{NEW[0]}:{NEW[1]}")
    assert result.returncode == 0
    entry = result.stdout.strip()
    check = oo("settings", vault_keys=entry)
    assert check.returncode == 0 and f"{entry.split(':')[0]}:***" in check.stdout
    assert entry.split(":")[1] not in check.stdout
