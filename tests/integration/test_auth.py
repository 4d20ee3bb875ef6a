"""Sign-in with OpenID Connect against a real provider (node-oidc-provider on loopback).

The "browser" here is an aiohttp client with a cookie jar, following the
redirects between oO and the provider and filling the provider's login form;
tests/browser/test_signin.py does the same in Chromium.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.helpers import consume_until
from tests.peers.oidc import APP_PORT, OidcPeer, oidc_provider  # noqa: F401 (fixture)
from topics.admin import ensure_topics
from topics.catalog import SIGNALS
from topics.codec import decode
from topics.records import LifecycleChanged
from web.app import create_app
from web.session import COOKIE, csrf_of, digest

pytestmark = pytest.mark.integration
BASE = f"http://127.0.0.1:{APP_PORT}"


def configured(settings, peer: OidcPeer, tmp_path):
    return dataclasses.replace(
        settings, public_url=BASE, oidc_issuer=peer.issuer, oidc_client_id=peer.client_id,
        oidc_client_secret=peer.client_secret, vapid_private_key=tmp_path / "vapid.pem")


@pytest.fixture
async def server(settings, kafka, postgres, oidc_provider,  # noqa: F811
                 tmp_path) -> AsyncIterator[TestServer]:
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    app = create_app(configured(settings, oidc_provider, tmp_path))
    async with TestServer(app, host="127.0.0.1", port=APP_PORT) as running:
        yield running


class Browser:
    """Cookies and redirects, as a browser keeps and follows them (one hop at a time)."""

    def __init__(self) -> None:
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def close(self) -> None:
        await self.http.close()

    async def get(self, url: str) -> aiohttp.ClientResponse:
        response = await self.http.get(url, allow_redirects=False)
        await response.read()
        return response

    def cookie(self, name: str) -> str | None:
        found = [c.value for c in self.http.cookie_jar if c.key == name]
        return found[-1] if found else None

    async def start(self) -> str:
        """Ask oO to sign in; the provider's authorization URL it sends the browser to."""
        response = await self.get(f"{BASE}/auth/login")
        assert response.status == 302, await response.text()
        return response.headers["Location"]

    async def at_provider(self, authorize_url: str, login: str) -> str:
        """Sign in at the provider's login form; the callback URL it sends the browser back to."""
        url = authorize_url
        for _ in range(10):
            response = await self.get(url)
            if response.status in (302, 303):
                url = urljoin(url, response.headers["Location"])
                if url.startswith(f"{BASE}/auth/callback"):
                    return url
                continue
            page = await response.text()
            assert response.status == 200, page
            action = re.search(r'<form[^>]*action="([^"]+)"', page)
            assert action is not None, page
            posted = await self.http.post(urljoin(url, action.group(1)), allow_redirects=False,
                                          data={"prompt": "login", "login": login,
                                                "password": "any"})
            await posted.read()
            assert posted.status in (302, 303), await posted.text()
            url = urljoin(url, posted.headers["Location"])
        raise AssertionError("the provider never sent the browser back")

    async def sign_in(self, login: str) -> aiohttp.ClientResponse:
        callback = await self.at_provider(await self.start(), login)
        return await self.get(callback)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = Browser()
    yield b
    await b.close()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def user_of(pool, login: str, issuer: str):
    return await pool.fetchrow("SELECT * FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
                               issuer, login)


async def forget(pool, login: str, issuer: str) -> None:
    await pool.execute("DELETE FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
                       issuer, login)


# --- the happy path ----------------------------------------------------------------------


async def test_first_sign_in_makes_the_person_with_consents_and_a_session(
        server, browser, pool, kafka, oidc_provider):  # noqa: F811
    login = "ada-" + digest(str(id(browser)))[:8]
    try:
        response = await browser.sign_in(login)
        assert response.status == 303 and response.headers["Location"] == "/"
        cookie = response.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
        person = await user_of(pool, login, oidc_provider.issuer)
        assert person is not None and person["display_name"] == f"Person {login}"
        consents = await pool.fetch(
            "SELECT document, version_hash, accepted_at FROM consents WHERE user_id = $1 "
            "ORDER BY document", person["id"])
        assert [c["document"] for c in consents] == ["privacy", "terms"]
        assert all(len(c["version_hash"]) == 64 for c in consents)
        # Its account event reaches the engine (through the outbox).
        key = str(person["id"]).encode()
        events = await consume_until(kafka, SIGNALS["lifecycle"].name, lambda kept: bool(kept),
                                     keep=lambda r: r.key == key, timeout=30)
        assert decode(LifecycleChanged, events[0].value).change == "user_created"
        # The session works for the API and the page; nothing of the attempt is left.
        me = await browser.http.get(f"{BASE}/api/me")
        assert me.status == 200 and (await me.json())["id"] == str(person["id"])
        page = await browser.get(f"{BASE}/")
        assert page.status == 200 and csrf_of(cookie.value) in await page.text()
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1",
                                   person["id"]) == 1
        assert browser.cookie("oo_signin") in (None, "")
    finally:
        await forget(pool, login, oidc_provider.issuer)


async def test_signing_in_again_finds_the_same_person_and_rotates_the_session(
        server, pool, oidc_provider):  # noqa: F811
    login = "grace-rotation"
    first, second = Browser(), Browser()
    try:
        await first.sign_in(login)
        person = await user_of(pool, login, oidc_provider.issuer)
        # A session token planted in the browser before sign-in (fixation) is closed by it.
        planted = first.cookie(COOKIE)
        assert planted
        again = await first.sign_in(login)
        assert again.status == 303
        rotated = first.cookie(COOKIE)
        assert rotated and rotated != planted
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE id = $1", digest(planted)) == 0
        await second.sign_in(login)
        assert (await user_of(pool, login, oidc_provider.issuer))["id"] == person["id"]
        assert await pool.fetchval("SELECT count(*) FROM consents WHERE user_id = $1",
                                   person["id"]) == 2  # one per document, not per sign-in
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1",
                                   person["id"]) == 2  # one per browser
    finally:
        await first.close()
        await second.close()
        await forget(pool, login, oidc_provider.issuer)


async def test_sign_out_closes_the_session_and_needs_the_csrf_token(
        server, browser, pool, oidc_provider):  # noqa: F811
    login = "lin-signout"
    try:
        await browser.sign_in(login)
        token = browser.cookie(COOKIE)
        assert token
        refused = await browser.http.post(f"{BASE}/auth/signout", allow_redirects=False)
        assert refused.status == 403
        form = await browser.http.post(f"{BASE}/auth/signout", allow_redirects=False,
                                       data={"csrf_token": csrf_of(token)})
        assert form.status == 303 and form.headers["Location"] == "/signin"
        assert await pool.fetchval("SELECT count(*) FROM sessions WHERE id = $1", digest(token)) == 0
        after = await browser.http.get(f"{BASE}/api/me", headers={"Cookie": f"{COOKIE}={token}"})
        assert after.status == 401
        # Signed out, the page sends people to sign in.
        page = await browser.get(f"{BASE}/")
        assert page.status == 303 and page.headers["Location"] == "/signin"
    finally:
        await forget(pool, login, oidc_provider.issuer)


# --- refusals ------------------------------------------------------------------------------


async def refusal(response: aiohttp.ClientResponse) -> str:
    assert response.status == 400
    text = await response.text()
    assert COOKIE not in response.cookies
    reason = re.search(r'id="reason"[^>]*>([^<]*)<', text)
    assert reason is not None, text
    return reason.group(1)


async def test_a_tampered_state_is_refused(server, browser, pool, oidc_provider):  # noqa: F811
    callback = await browser.at_provider(await browser.start(), "mallory-state")
    reason = await refusal(await browser.get(with_query(callback, state="forged-by-someone")))
    assert "state does not match" in reason
    assert await user_of(pool, "mallory-state", oidc_provider.issuer) is None


async def test_a_replayed_callback_is_refused(server, browser, pool, oidc_provider):  # noqa: F811
    login = "replay-callback"
    try:
        callback = await browser.at_provider(await browser.start(), login)
        attempt = browser.cookie("oo_signin")
        assert (await browser.get(callback)).status == 303
        # The browser dropped its attempt cookie: nothing to resume.
        assert "no sign-in in progress" in await refusal(await browser.get(callback))
        # A copy of the cookie does not help either: the attempt was used up.
        replay = Browser()
        try:
            replay.http.cookie_jar.update_cookies({"oo_signin": attempt or ""},
                                                  URL(f"{BASE}/auth/"))
            reason = await refusal(await replay.get(callback))
        finally:
            await replay.close()
        assert "already completed or has expired" in reason
    finally:
        await forget(pool, login, oidc_provider.issuer)


async def test_a_replayed_code_is_refused_by_the_provider(
        server, browser, pool, oidc_provider):  # noqa: F811
    login = "replay-code"
    try:
        used = await browser.at_provider(await browser.start(), login)
        assert (await browser.get(used)).status == 303
        # A new sign-in of this browser, answered with the code that was already used.
        fresh = await browser.at_provider(await browser.start(), login)
        replayed = with_query(fresh, code=parse_qs(urlsplit(used).query)["code"][0])
        reason = await refusal(await browser.get(replayed))
        assert "already used or has expired" in reason
    finally:
        await forget(pool, login, oidc_provider.issuer)


async def test_an_id_token_with_another_nonce_is_refused(
        server, browser, pool, oidc_provider):  # noqa: F811
    authorize = with_query(await browser.start(), nonce="a-nonce-of-another-sign-in")
    reason = await refusal(await browser.get(await browser.at_provider(authorize, "nonce-eve")))
    assert "nonce does not match" in reason
    assert await user_of(pool, "nonce-eve", oidc_provider.issuer) is None


async def test_an_expired_id_token_is_refused(server, browser, pool, oidc_provider):  # noqa: F811
    callback = await browser.at_provider(await browser.start(), "late-larry")
    oidc_provider.expire_next_id_token()
    reason = await refusal(await browser.get(callback))
    assert "ID token has expired" in reason
    assert await user_of(pool, "late-larry", oidc_provider.issuer) is None


async def test_a_callback_without_the_browsers_attempt_is_refused(
        server, browser, oidc_provider):  # noqa: F811
    callback = await browser.at_provider(await browser.start(), "other-browser")
    stranger = Browser()  # login CSRF: the victim's browser never started this sign-in
    try:
        reason = await refusal(await stranger.get(callback))
        assert "no sign-in in progress" in reason
    finally:
        await stranger.close()


async def test_the_provider_requires_pkce(server, browser, oidc_provider):  # noqa: F811
    authorize = await browser.start()
    parts = urlsplit(authorize)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()
             if k not in ("code_challenge", "code_challenge_method")}
    response = await browser.get(urlunsplit(parts._replace(query=urlencode(query))))
    # The provider sends the error back to oO's callback, which says so.
    location = urljoin(authorize, response.headers["Location"])
    assert "error=invalid_request" in location and "PKCE" in location
    reason = await refusal(await browser.get(location))
    assert "provider did not sign you in (invalid_request)" in reason


# --- not configured ------------------------------------------------------------------------


async def test_without_a_provider_sign_in_says_it_is_not_configured(settings, postgres, tmp_path):
    app = create_app(dataclasses.replace(settings, vapid_private_key=tmp_path / "v.pem"),
                     relay=False)
    async with TestServer(app) as running, aiohttp.ClientSession() as http:
        page = await http.get(running.make_url("/signin"))
        assert page.status == 200 and "Sign-in is not configured" in await page.text()
        start = await http.get(running.make_url("/auth/login"), allow_redirects=False)
        assert start.status == 503 and "not configured" in (await start.json())["error"]
        index = await http.get(running.make_url("/"), allow_redirects=False)
        assert index.status == 200  # the page, empty, as before sign-in existed
