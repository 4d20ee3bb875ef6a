"""Sign-in with OpenID Connect, sign-out, and the documents a person accepts.

`GET /auth/login` starts the authorization-code flow: a random attempt token
goes into the `oo_signin` cookie (HttpOnly, SameSite=Lax, path /auth, 10
minutes); the PKCE verifier and the nonce are derived from it (never stored),
and only hashes of it and of the `state` are kept in `sign_in_attempts`. The
provider sends the browser back to `GET /auth/callback`, which takes the
attempt out of the table (one use), checks the state against this browser's
attempt, exchanges the code and validates the ID token (adapters/oidc.py),
finds or makes the person (adapters/accounts.py), and opens a fresh session in
place of the one the browser came with. Every refusal is a page that says why.

Not configured (no OO_OIDC_CLIENT_ID/SECRET): /signin says so and the flow
answers 503; the development session of `oo dev` keeps working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from adapters.accounts import Accounts, Document
from adapters.oidc import OidcClient, SignInRefused
from web.account_pages import document_page, refusal_page, signin_page
from web.errors import ServiceUnavailable, TooManyRequests
from web.keys import DB, SETTINGS, SIGNIN_LIMITER
from web.ratelimit import retry_after
from web.session import (
    caller,
    clear_cookie,
    close,
    cookie_secure,
    digest,
    require,
    rotate,
    set_cookie,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
ATTEMPT_COOKIE = "oo_signin"
ATTEMPT_LIFETIME = timedelta(minutes=10)
CALLBACK_PATH = "/auth/callback"
LEGAL = Path(__file__).parent / "legal"
DOCUMENTS = ("terms", "privacy")
OIDC = web.AppKey("oidc", OidcClient)
HTTP = web.AppKey("http", aiohttp.ClientSession)
ACCEPTED = web.AppKey("accepted", tuple)


def documents(folder: Path = LEGAL) -> tuple[Document, ...]:
    """The texts a person accepts by signing in, as they read now."""
    return tuple(Document(name, (folder / f"{name}.md").read_text(encoding="utf-8"))
                 for name in DOCUMENTS)


def derived(attempt_token: str, purpose: str) -> str:
    """A per-attempt secret derived from the cookie's token: the nonce or the PKCE verifier.

    43 URL-safe characters, valid as a PKCE code_verifier (RFC 7636 section 4.1).
    """
    mac = hmac.new(attempt_token.encode(), f"oo oidc {purpose} v1".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


async def identity_context(app: web.Application) -> AsyncIterator[None]:
    """The outbound HTTP session and, when configured, the OIDC client (cleanup_ctx)."""
    settings = app[SETTINGS]
    app[ACCEPTED] = documents()
    async with aiohttp.ClientSession(raise_for_status=False) as session:
        app[HTTP] = session
        if settings.oidc_configured:
            app[OIDC] = OidcClient(
                session, issuer=settings.oidc_issuer, client_id=settings.oidc_client_id or "",
                client_secret=settings.oidc_client_secret or "",
                redirect_uri=settings.public_url + CALLBACK_PATH)
        yield


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


def redirect(location: str, status: int = 303) -> web.Response:
    """A redirect returned as a response, so cookies and security headers go with it."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _provider_name(issuer: str) -> str:
    host = urlsplit(issuer).hostname or issuer
    return "Google" if host == "accounts.google.com" else host


def _limit_sign_in(request: web.Request) -> None:
    """Sign-in attempts per client address: a burst gets 429 with Retry-After.

    (Behind a reverse proxy every client shares its address: configure the proxy
    to limit too, or key this on a trusted forwarded-for header.)
    """
    wait = request.app[SIGNIN_LIMITER].take(request.remote or "unknown", time.monotonic())
    if wait:
        raise TooManyRequests(retry_after(wait), "sign-in attempts from this address")


@routes.get("/signin")
async def signin(request: web.Request) -> web.StreamResponse:
    """The sign-in page (or the tip page, for someone already signed in)."""
    if await caller(request, request.app[DB]) is not None:
        return redirect("/")
    settings = request.app[SETTINGS]
    notice = ("Your account and everything oO kept about you are deleted."
              if request.query.get("deleted") else None)
    return _html(signin_page(configured=OIDC in request.app,
                             provider=_provider_name(settings.oidc_issuer), notice=notice))


@routes.get("/auth/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Leave for the provider with a new attempt (state, nonce, PKCE) bound to this browser."""
    _limit_sign_in(request)
    oidc = request.app.get(OIDC)
    if oidc is None:
        raise ServiceUnavailable("sign-in is not configured on this server")
    pool, settings = request.app[DB], request.app[SETTINGS]
    token, state = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    try:
        url = await oidc.authorization_url(state=state, nonce=derived(token, "nonce"),
                                           code_verifier=derived(token, "pkce"))
    except SignInRefused as err:
        log.warning("sign-in cannot start: %s", err.message)
        return _html(refusal_page(err.message), status=503)
    now = datetime.now(UTC)
    await pool.execute("DELETE FROM sign_in_attempts WHERE expires_at < $1", now)
    await pool.execute(
        "INSERT INTO sign_in_attempts (id, state_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        digest(token), digest(state), now, now + ATTEMPT_LIFETIME)
    response = redirect(url, status=302)
    response.set_cookie(ATTEMPT_COOKIE, token, max_age=int(ATTEMPT_LIFETIME.total_seconds()),
                        path="/auth", httponly=True, samesite="Lax",
                        secure=cookie_secure(request, settings.env))
    return response


@routes.get(CALLBACK_PATH)
async def callback(request: web.Request) -> web.StreamResponse:
    """Back from the provider: check everything, then open a fresh session."""
    _limit_sign_in(request)
    oidc = request.app.get(OIDC)
    if oidc is None:
        raise ServiceUnavailable("sign-in is not configured on this server")
    pool, settings = request.app[DB], request.app[SETTINGS]
    secure = cookie_secure(request, settings.env)
    try:
        user_id = await _complete(request, oidc)
    except SignInRefused as err:
        log.info("sign-in refused: %s", err.message)
        response = _html(refusal_page(err.message), status=400)
        response.del_cookie(ATTEMPT_COOKIE, path="/auth", secure=secure, httponly=True,
                            samesite="Lax")
        return response
    session = await rotate(pool, request, user_id)
    response = redirect("/")
    response.del_cookie(ATTEMPT_COOKIE, path="/auth", secure=secure, httponly=True, samesite="Lax")
    set_cookie(response, session, secure=secure)
    return response


async def _complete(request: web.Request, oidc: OidcClient) -> uuid.UUID:
    query = request.query
    token = request.cookies.get(ATTEMPT_COOKIE, "")
    pool = request.app[DB]
    row = None
    if token and len(token) <= 100:
        # One use: the attempt is gone whatever happens next, so a replayed callback finds nothing.
        row = await pool.fetchrow(
            "DELETE FROM sign_in_attempts WHERE id = $1 RETURNING state_hash, expires_at",
            digest(token))
    if "error" in query:
        error = "".join(c for c in query["error"][:64] if c.isalnum() or c == "_")
        raise SignInRefused(f"the provider did not sign you in ({error})")
    if not token:
        raise SignInRefused("this browser has no sign-in in progress (it expired, or cookies "
                            "are blocked); start again")
    if row is None:
        raise SignInRefused("this sign-in was already completed or has expired; start again")
    now = datetime.now(UTC)
    if row["expires_at"] <= now:
        raise SignInRefused("this sign-in took too long and expired; start again")
    state = query.get("state", "")
    if not hmac.compare_digest(digest(state).encode(), row["state_hash"].encode()):
        raise SignInRefused("the state does not match this browser's sign-in: the link was "
                            "altered or belongs to another sign-in")
    issuer = query.get("iss")
    if issuer is not None and issuer != oidc.issuer:  # RFC 9207: a mix-up of providers
        raise SignInRefused("the answer comes from another issuer than the one asked")
    code = query.get("code", "")
    if not code or len(code) > 2048:
        raise SignInRefused("the provider's answer has no code")
    identity = await oidc.finish(code, nonce=derived(token, "nonce"),
                                 code_verifier=derived(token, "pkce"))
    async with pool.acquire() as conn, conn.transaction():
        signed = await Accounts(pool).sign_in(
            conn, identity.issuer, identity.subject, identity.name, request.app[ACCEPTED], now,
            str(uuid.uuid4()))
    log.info("signed in %s%s", signed.user_id, " (new person)" if signed.created else "")
    return signed.user_id


@routes.post("/auth/signout")
async def signout(request: web.Request) -> web.StreamResponse:
    """Close this browser's session (CSRF-checked); back to the sign-in page."""
    pool, settings = request.app[DB], request.app[SETTINGS]
    who = await require(request, pool)
    await close(pool, who.token)
    response = redirect("/signin")
    clear_cookie(response, secure=cookie_secure(request, settings.env))
    return response


@routes.get("/terms")
async def terms(request: web.Request) -> web.Response:
    return _html(document_page("Terms", _text(request, "terms")))


@routes.get("/privacy")
async def privacy(request: web.Request) -> web.Response:
    return _html(document_page("Privacy", _text(request, "privacy")))


def _text(request: web.Request, name: str) -> str:
    return next(d.text for d in request.app[ACCEPTED] if d.name == name)
