"""Sign-in in Chromium: the real `oo web` and a real OpenID provider (node-oidc-provider).

The browser goes from oO's sign-in page to the provider's login form and back,
and lands on the tip page. Forged answers (a tampered state, a replayed code,
an ID token for another nonce, an expired ID token) each end on a page that
says why. Requests to anything but loopback are blocked (the provider's
development pages link a web font).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page, Route, async_playwright, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SHOTS, shot
from tests.conftest import oo_test_environ
from tests.helpers import oo_process, stop_process, wait_http
from tests.peers.oidc import BROWSER_WEB_PORT, OidcPeer, oidc_provider  # noqa: F401 (fixture)
from web.session import COOKIE

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(90, func_only=True)]
BASE = f"http://127.0.0.1:{BROWSER_WEB_PORT}"
CALLBACK = f"{BASE}/auth/callback"


@pytest.fixture(scope="module")
async def web(postgres, kafka, oidc_provider) -> AsyncIterator[str]:  # noqa: F811
    """`oo web` configured to sign people in with the test provider."""
    log = SHOTS.parent / "signin-web.log"
    env = {**oo_test_environ(), "OO_WEB_PORT": str(BROWSER_WEB_PORT), "OO_PUBLIC_URL": BASE,
           "OO_OIDC_ISSUER": oidc_provider.issuer, "OO_OIDC_CLIENT_ID": oidc_provider.client_id,
           "OO_OIDC_CLIENT_SECRET": oidc_provider.client_secret}
    process = oo_process(["web"], env, log)
    try:
        await asyncio.to_thread(wait_http, f"{BASE}/ready", process=process, log=log)
        yield BASE
    finally:
        stop_process(process)


@pytest.fixture
async def db(postgres) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres)
    yield conn
    await conn.close()


@pytest.fixture
async def context(web: str, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as playwright:
        browser_context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            base_url=web, viewport={"width": 412, "height": 860}, locale="en-GB")

        async def loopback_only(route: Route) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                await route.continue_()
            else:
                await route.abort()

        await browser_context.route("**/*", loopback_only)
        try:
            yield browser_context
        finally:
            await browser_context.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return context.pages[0] if context.pages else await context.new_page()


def replaced(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def login_at_provider(page: Page, login: str) -> None:
    """The provider's development login form: any login, any password."""
    await page.locator('input[name="login"]').fill(login)
    await page.locator('input[name="password"]').fill("correct horse")
    await page.locator('button[type="submit"]').click()


async def held_callback(page: Page, login: str) -> str:
    """Sign in at the provider, but stop the browser before it reaches oO's callback."""
    caught: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def hold(route: Route) -> None:
        if not caught.done():
            caught.set_result(route.request.url)
        await route.abort()

    await page.route(f"{CALLBACK}*", hold)
    await page.goto("/signin")
    await page.locator("#signin").click()
    await login_at_provider(page, login)
    url = await asyncio.wait_for(caught, 20)
    await page.unroute(f"{CALLBACK}*", hold)
    return url


async def expect_refusal(page: Page, words: str, name: str) -> None:
    await expect(page.locator("#reason")).to_contain_text(words)
    await expect(page.locator("#again")).to_have_attribute("href", "/signin")
    await shot(page, f"signin-{name}")
    assert not [c for c in await page.context.cookies() if c["name"] == COOKIE]


async def forget(db: asyncpg.Connection, peer: OidcPeer, login: str) -> None:
    await db.execute("DELETE FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
                     peer.issuer, login)


async def test_signing_in_through_the_provider_lands_on_the_tip_page(
        page: Page, db, oidc_provider):  # noqa: F811
    login = "browser-ada"
    try:
        await page.goto("/")
        await expect(page).to_have_url(f"{BASE}/signin")  # no session: sign in first
        await shot(page, "signin-0-page")
        await page.locator("#signin").click()
        await expect(page.locator('input[name="login"]')).to_be_visible()
        await login_at_provider(page, login)
        await expect(page).to_have_url(f"{BASE}/")
        await page.wait_for_selector("html[data-ready]", state="attached")
        await expect(page.locator("#empty")).to_have_text("Nothing for now.")
        await shot(page, "signin-1-landed")
        cookie = next(c for c in await page.context.cookies(BASE) if c["name"] == COOKIE)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        user_id = await db.fetchval(
            "SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
            oidc_provider.issuer, login)
        assert user_id is not None
        # The page's own API calls work with the new session and the CSRF token in the page.
        status = await page.evaluate("""() => fetch('/api/preferences', {method: 'PUT',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token':
                      document.querySelector('meta[name=csrf-token]').content},
            body: JSON.stringify({daily_budget: 0})}).then(r => r.status)""")
        assert status == 200
        assert await db.fetchval("SELECT preferences->>'daily_budget' FROM users WHERE id = $1",
                                 user_id) == "0"
    finally:
        await forget(db, oidc_provider, login)


async def test_a_tampered_state_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    callback = await held_callback(page, "browser-state")
    await page.goto(replaced(callback, state="tampered"))
    await expect_refusal(page, "state does not match", "tampered-state")


async def test_a_replayed_code_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    login = "browser-replay"
    try:
        used = await held_callback(page, login)
        await page.goto(used)
        await expect(page).to_have_url(f"{BASE}/")
        # The same callback again: the sign-in it belonged to is over.
        await page.goto(used)
        await expect_refusal(page, "no sign-in in progress", "replayed-callback")
        # A new sign-in answered with the old code: the provider refuses to redeem it twice.
        fresh = await held_callback(page, login)
        await page.goto(replaced(fresh, code=parse_qs(urlsplit(used).query)["code"][0]))
        await expect_refusal(page, "already used or has expired", "replayed-code")
    finally:
        await forget(db, oidc_provider, login)


async def test_an_id_token_for_another_nonce_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    async def swap_nonce(route: Route) -> None:
        await route.continue_(url=replaced(route.request.url, nonce="nonce-of-another-sign-in"))

    await page.route(f"{oidc_provider.issuer}/auth?*", swap_nonce)
    await page.goto("/signin")
    await page.locator("#signin").click()
    await login_at_provider(page, "browser-nonce")
    await expect_refusal(page, "nonce does not match", "wrong-nonce")
    assert await db.fetchval("SELECT count(*) FROM users WHERE oidc_subject = 'browser-nonce'") == 0


async def test_an_expired_id_token_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    callback = await held_callback(page, "browser-expired")
    await asyncio.to_thread(oidc_provider.expire_next_id_token)
    await page.goto(callback)
    await expect_refusal(page, "ID token has expired", "expired-id-token")
    assert await db.fetchval("SELECT count(*) FROM users WHERE oidc_subject = 'browser-expired'") == 0
