"""Server-side sessions: an opaque token in an HttpOnly cookie, its hash in PostgreSQL.

The cookie holds a random token; the `sessions` row holds only its SHA-256, so a
copy of the database opens no session. Each session has its own CSRF token, an
HMAC of the session token (so every page of the session gets the same one, and
its hash is stored beside the session's): every state-changing request made
with the cookie must send it back in `X-CSRF-Token`, which a cross-site page
cannot read.

HTML forms (sign-out, the connectors page) cannot set a header: they send the
same token in a `csrf_token` field instead.

Besides the token, a state-changing request that carries an `Origin` header
(browsers send it on every cross-origin request and on same-origin POSTs) must
come from oO's own origin: the host it was sent to, or `OO_PUBLIC_URL`.
A second, independent check: a token that leaked (a log, an old cached page)
still does not let another site act for the person. A request without
`Origin` (a non-browser client, an old browser) relies on the token alone.

Sessions are opened by sign-in (web/auth.py), which first closes the session
the browser came with (rotation: a session token planted before sign-in is
worthless after it); sign-out closes the session. The cookie is HttpOnly,
SameSite=Lax, and Secure in production (behind a TLS-terminating proxy too)
and whenever the request came over https.

`development_session` gives the newest demo person (made by `oo dev`) a
session without sign-in; it refuses outside `dev`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from web.errors import ApiError
from web.keys import SETTINGS

COOKIE = "oo_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # the same token in an HTML form
LIFETIME = timedelta(days=30)
SEEN_EVERY = timedelta(minutes=1)  # how fresh sessions.last_seen_at is kept
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEMO_NAME = "oO demo"  # users.display_name of demo people (oo/dev.py)


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


@dataclass(frozen=True, slots=True)
class Session:
    """An open session: who, and the two secrets the browser holds (never stored)."""

    user_id: uuid.UUID
    token: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class Caller:
    """The person a request acts for, and their session's token (from the cookie)."""

    user_id: uuid.UUID
    token: str

    @property
    def csrf_token(self) -> str:
        return csrf_of(self.token)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_of(token: str) -> str:
    """The session's CSRF token: derived from the session token, useless without the cookie."""
    return hmac.new(token.encode(), b"oo csrf v1", hashlib.sha256).hexdigest()


async def open_session(conn: asyncpg.Connection | asyncpg.Pool, user_id: uuid.UUID, *,
                       user_agent: str | None = None) -> Session:
    """A new session for `user_id`; the tokens are returned once and stored hashed."""
    token = secrets.token_urlsafe(32)
    csrf = csrf_of(token)
    now = datetime.now(UTC)
    await conn.execute(
        """INSERT INTO sessions (id, user_id, created_at, expires_at, csrf_token_hash, user_agent)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        digest(token), user_id, now, now + LIFETIME, digest(csrf), (user_agent or "")[:300])
    await conn.execute(_ACTIVE, user_id)
    return Session(user_id, token, csrf)


async def caller(request: web.Request, pool: asyncpg.Pool) -> Caller | None:
    """The session behind the request's cookie, if it is open and unexpired."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    session_id = digest(token)
    row = await pool.fetchrow(
        "SELECT user_id, last_seen_at < now() - $2::interval AS stale FROM sessions "
        "WHERE id = $1 AND expires_at > now()", session_id, SEEN_EVERY)
    if row is None:
        return None
    if row["stale"]:
        # A read never writes, except this once a minute: every request writing
        # (and flushing the WAL) would cost more than the request itself.
        await pool.execute(_SEEN, session_id)
    return Caller(row["user_id"], token)


# The session is in use: keep last_seen_at fresh, and note day 1 or day 7 after sign-up
# (active_days, for retention on /metrics; no other day is kept). One round trip.
_DAY = "floor(extract(epoch FROM now() - u.created_at) / 86400)::smallint"
_SEEN = f"""
WITH seen AS (UPDATE sessions SET last_seen_at = now() WHERE id = $1 RETURNING user_id)
INSERT INTO active_days (user_id, day)
SELECT u.id, {_DAY} FROM seen JOIN users u ON u.id = seen.user_id
WHERE {_DAY} IN (1, 7)
ON CONFLICT DO NOTHING
"""
_ACTIVE = f"""
INSERT INTO active_days (user_id, day)
SELECT u.id, {_DAY} FROM users u WHERE u.id = $1 AND {_DAY} IN (1, 7)
ON CONFLICT DO NOTHING
"""


async def require(request: web.Request, pool: asyncpg.Pool) -> Caller:
    """The caller, or 401; for unsafe methods also a matching CSRF token, or 403."""
    who = await caller(request, pool)
    if who is None:
        raise Unauthorized("sign in first: no open session")
    if request.method not in SAFE_METHODS:
        if not same_origin(request):
            raise Forbidden("the request comes from another site (Origin)")
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.content_type in ("application/x-www-form-urlencoded",
                                                 "multipart/form-data"):
            field = (await request.post()).get(CSRF_FIELD)
            sent = field if isinstance(field, str) else ""
        if not sent or not hmac.compare_digest(sent.encode(), who.csrf_token.encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header")
    return who


def same_origin(request: web.Request) -> bool:
    """No `Origin` header, or one naming this host or the public URL's origin.

    The scheme is not compared with the request's own: behind a TLS-terminating
    proxy the browser's `https://host` reaches the app as plain http.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(request.app[SETTINGS].public_url)
    if origin == f"{public.scheme}://{public.netloc}":
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    # "null" (a sandboxed frame, a file: page, some redirects) has no scheme: refused.
    return parts.scheme in ("http", "https") and bool(parts.netloc) \
        and parts.netloc.lower() == request.host.lower()


def cookie_secure(request: web.Request, env: str) -> bool:
    """Secure cookies in production (TLS may end at a proxy) and on any https request."""
    return env == "production" or request.secure


def set_cookie(response: web.StreamResponse, session: Session, *, secure: bool) -> None:
    response.set_cookie(COOKIE, session.token, max_age=int(LIFETIME.total_seconds()), path="/",
                        httponly=True, secure=secure, samesite="Lax")


# The session is over on this browser (sign-out, account deleted): besides the cookie, the
# browser drops what the page stored for it — the service worker's cached page (which holds
# the tip and the CSRF token), the offline reaction queue, and the service worker itself.
CLEAR_SITE_DATA = '"cache", "storage"'


def clear_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    response.del_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="Lax")
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA


async def rotate(conn: asyncpg.Connection | asyncpg.Pool, request: web.Request,
                 user_id: uuid.UUID) -> Session:
    """Sign-in: close the session the browser came with (any person's) and open a new one."""
    old = request.cookies.get(COOKIE)
    if old and len(old) <= 200:
        await conn.execute("DELETE FROM sessions WHERE id = $1", digest(old))
    return await open_session(conn, user_id, user_agent=request.headers.get("User-Agent"))


async def close(pool: asyncpg.Pool, token: str) -> bool:
    """Sign-out: the session is deleted, its cookie opens nothing any more."""
    return bool(await pool.fetchval("DELETE FROM sessions WHERE id = $1 RETURNING true",
                                    digest(token)))


async def development_session(pool: asyncpg.Pool, env: str,
                              user_agent: str | None = None) -> Session | None:
    """A session for the newest demo person (`oo dev`), only when OO_ENV=dev."""
    if env != "dev":
        return None
    user_id = await pool.fetchval(
        "SELECT id FROM users WHERE display_name = $1 ORDER BY created_at DESC LIMIT 1", DEMO_NAME)
    if user_id is None:
        return None
    return await open_session(pool, user_id, user_agent=user_agent)
