"""Database migrations: plain SQL files applied in order, each exactly once.

A migration is a file `migrations/NNNN_name.sql` (four digits, then a
lower-case name). `migrate()` applies the ones not yet recorded, in version
order, each in its own transaction together with its row in
`schema_migrations`, so a migration is either fully applied and recorded or
not at all. Applied files must never change: the SHA-256 of every applied
file is recorded and checked on each run, and a difference is an error (write
a new migration instead). Concurrent migrators (several processes starting at
once) are serialized by a PostgreSQL advisory lock; the later ones find
nothing left to do.

A migration runs inside a transaction, so statements that cannot (such as
CREATE INDEX CONCURRENTLY) do not belong in one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from oo.infra.common import Log

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9][a-z0-9_]*)\.sql$")
# Key of the session-level advisory lock every migrator takes ("oOmigrat").
LOCK_KEY = int.from_bytes(b"oOmigrat", "big")
# How long a migrator waits for another one before giving up.
LOCK_TIMEOUT_S = 120
CONNECT_TIMEOUT_S = 10

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """Migrations could not be read or applied; the message is one line a person can act on."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    path: Path
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


@dataclass(frozen=True)
class AppliedMigration:
    """One row of schema_migrations."""

    version: str
    name: str
    checksum: str
    applied_at: datetime


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration in `directory` (default: the repo's migrations/), in version order."""
    folder = MIGRATIONS_DIR if directory is None else directory
    if not folder.is_dir():
        raise MigrationError(f"migrations folder {folder} does not exist")
    migrations: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if match is None:
            # A misnamed file would silently never be applied; refuse instead.
            raise MigrationError(
                f"{path.name} in {folder} is not named NNNN_name.sql (four digits, lower-case name)"
            )
        raw = path.read_bytes()
        try:
            sql = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MigrationError(f"{path} is not UTF-8") from None
        version = match["version"]
        if version in migrations:
            raise MigrationError(
                f"two migrations have version {version}: {migrations[version].path.name} "
                f"and {path.name}"
            )
        migrations[version] = Migration(version, match["name"], path, sql,
                                        hashlib.sha256(raw).hexdigest())
    return [migrations[v] for v in sorted(migrations)]


async def migrate(dsn: str, *, log: Log = print, directory: Path | None = None) -> list[str]:
    """Apply the migrations not yet applied; return their versions (e.g. ["0001"]).

    Raises MigrationError when the database cannot be reached, an applied file
    changed, the database has migrations this code does not know, or a
    migration fails (that one is rolled back; earlier ones stay applied).
    """
    migrations = load_migrations(directory)
    conn = await _connect(dsn)
    try:
        await _acquire_lock(conn)
        try:
            await conn.execute(CREATE_TABLE)
            recorded = {row.version: row for row in await _fetch_applied(conn)}
            _check_recorded(recorded, migrations)
            done: list[str] = []
            for migration in migrations:
                if migration.version in recorded:
                    continue
                log(f"migrate: applying {migration.label}")
                await _apply(conn, migration)
                done.append(migration.version)
            return done
        finally:
            await _release_lock(conn)
    finally:
        await conn.close()


async def applied(dsn: str) -> list[AppliedMigration]:
    """The migrations recorded in the database, in version order (empty if none ever ran)."""
    conn = await _connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            return []
        return await _fetch_applied(conn)
    finally:
        await conn.close()


async def pending(dsn: str, directory: Path | None = None) -> list[Migration]:
    """The migrations `migrate` would apply now (checksums of applied ones are checked too)."""
    migrations = load_migrations(directory)
    recorded = {row.version: row for row in await applied(dsn)}
    _check_recorded(recorded, migrations)
    return [m for m in migrations if m.version not in recorded]


# --- internals ---------------------------------------------------------------


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(
            dsn, timeout=CONNECT_TIMEOUT_S, server_settings={"application_name": "oo-migrate"}
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
            ValueError) as err:
        raise MigrationError(
            f"cannot connect to PostgreSQL at {_describe(dsn)}: {_reason(err, dsn)}; "
            f"check OO_DATABASE_URL and that the server runs (`oo infra up`)"
        ) from None


async def _acquire_lock(conn: asyncpg.Connection) -> None:
    # lock_timeout also bounds advisory-lock waits, so a stuck migrator
    # elsewhere gives a clear error instead of a silent hang.
    await conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    except asyncpg.LockNotAvailableError:
        raise MigrationError(
            f"another migrator has held the migration lock for over {LOCK_TIMEOUT_S}s; "
            f"see pg_stat_activity (application_name oo-migrate) and try again"
        ) from None
    finally:
        await conn.execute("RESET lock_timeout")


async def _release_lock(conn: asyncpg.Connection) -> None:
    # Closing the session would release it too; unlocking explicitly lets a
    # waiting migrator go on at once even if close is slow.
    try:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pass


async def _fetch_applied(conn: asyncpg.Connection) -> list[AppliedMigration]:
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
    )
    return [AppliedMigration(r["version"], r["name"], r["checksum"], r["applied_at"])
            for r in rows]


def _check_recorded(recorded: dict[str, AppliedMigration], migrations: list[Migration]) -> None:
    """Refuse to go on when applied history and the files disagree."""
    files = {m.version: m for m in migrations}
    unknown = sorted(set(recorded) - set(files))
    if unknown:
        names = ", ".join(f"{v}_{recorded[v].name}" for v in unknown)
        raise MigrationError(
            f"the database has migrations this code does not have ({names}); "
            f"run newer code, or recreate the development database"
        )
    for version, row in recorded.items():
        migration = files[version]
        if migration.checksum != row.checksum:
            raise MigrationError(
                f"migration {migration.label} was changed after it was applied "
                f"(checksum {migration.checksum[:12]} != recorded {row.checksum[:12]}); "
                f"restore the file and put the change in a new migration"
            )


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    """Run one file and record it in one transaction: applied and recorded, or neither."""
    try:
        async with conn.transaction():
            # No arguments: asyncpg uses the simple query protocol, which runs
            # a file of many statements.
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                "VALUES ($1, $2, $3, now())",
                migration.version, migration.name, migration.checksum,
            )
    except asyncpg.PostgresError as err:
        where = ""
        position = getattr(err, "position", None)
        if position and str(position).isdigit():
            line = migration.sql[: int(position) - 1].count("\n") + 1
            where = f" at line {line}"
        raise MigrationError(
            f"migration {migration.label} failed{where}: {_first_line(str(err))} "
            f"(nothing of it was applied)"
        ) from err


def _describe(dsn: str) -> str:
    """user@host:port/database of a DSN, never its password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "the configured database"
    if not parts.scheme.startswith("postgres"):
        return "the configured database"
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{host}:{port}/{parts.path.lstrip('/')}"


def _reason(err: BaseException, dsn: str) -> str:
    text = _first_line(str(err)) or type(err).__name__
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
    return text


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
