"""Sign-in in Chromium: the real `oo web` and a real OpenID provider (node-oidc-provider).

The browser goes from oO's sign-in page to the provider's login form and back,
and lands on the tip page. Forged answers (a tampered state, a replayed code,
an ID token for another nonce, an expired ID token) each end on a page that
says why. Requests to anything but loopback are blocked (the provider's
development pages link a web font).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, Route, async_playwright, expect

from adapters.vault import new_key

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SHOTS, shot, until
from tests.conftest import oo_test_environ
from tests.helpers import oo_process, stop_process, wait_http
from tests.peers.oidc import BROWSER_WEB_PORT, OidcPeer, oidc_provider  # noqa: F401 (fixture)
from tests.peers.todoist import BASE as TODOIST, PORT as TODOIST_PORT, LocalTodoist
from web.session import COOKIE

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(90, func_only=True)]
BASE = f"http://127.0.0.1:{BROWSER_WEB_PORT}"
CALLBACK = f"{BASE}/auth/callback"
# How many pages the service worker's caches hold.
CACHED_PAGES = """async () => {
    let n = 0;
    for (const name of await caches.keys()) n += (await (await caches.open(name)).keys()).length;
    return n;
}"""


@pytest.fixture(scope="module")
async def local_todoist() -> AsyncIterator[LocalTodoist]:
    """The local Todoist (tests/peers/todoist), for the whole module."""
    peer = LocalTodoist("oo-browser-todoist", secrets.token_hex(16),
                        f"{BASE}/connectors/todoist/callback")
    async with TestServer(peer.app(), host="127.0.0.1", port=TODOIST_PORT):
        yield peer


@pytest.fixture(scope="module")
async def web(postgres, kafka, oidc_provider, local_todoist) -> AsyncIterator[str]:  # noqa: F811
    """`oo web` configured to sign people in with the test provider, and to connect Todoist."""
    log = SHOTS.parent / "signin-web.log"
    env = {**oo_test_environ(), "OO_WEB_PORT": str(BROWSER_WEB_PORT), "OO_PUBLIC_URL": BASE,
           "OO_OIDC_ISSUER": oidc_provider.issuer, "OO_OIDC_CLIENT_ID": oidc_provider.client_id,
           "OO_OIDC_CLIENT_SECRET": oidc_provider.client_secret,
           "OO_APP_ID": f"oo-browser-{secrets.token_hex(4)}",
           "OO_VAULT_KEYS": f"k1:{new_key()}", "OO_TODOIST_CLIENT_ID": local_todoist.client_id,
           "OO_TODOIST_CLIENT_SECRET": local_todoist.client_secret,
           "OO_TODOIST_AUTH_URL": TODOIST, "OO_TODOIST_API_URL": TODOIST}
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


async def held_callback(page: Page, peer: OidcPeer, login: str) -> str:
    """Sign in at the provider, but stop the browser before it reaches oO's callback.

    Playwright routes only the first request of a redirect chain, so the
    requests that start one (oO's /auth/login, the login form's POST) are routed
    and their redirects followed here with the browser's own cookies (the
    context's request client shares them), until the callback: that URL is
    returned instead of visited. A provider that still knows the person skips
    its login form.
    """
    caught: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    interaction = f"{peer.issuer}/interaction/"

    async def follow(route: Route) -> None:
        if route.request.url.startswith(interaction) and route.request.method != "POST":
            await route.continue_()
            return
        url, response = route.request.url, await route.fetch(max_redirects=0)
        while response.status in (302, 303):
            url = urljoin(url, response.headers["location"])
            if url.startswith(CALLBACK):
                caught.set_result(url)
                await route.fulfill(status=200, content_type="text/html", body="<p>held</p>")
                return
            if url.startswith(interaction):  # the login form: let the browser show it
                await route.fulfill(status=303, headers={"location": url})
                return
            response = await page.context.request.get(url, max_redirects=0)
        await route.fulfill(response=response)

    await page.route(f"{BASE}/auth/login", follow)
    await page.route(f"{interaction}**", follow)
    await page.goto("/auth/login")  # what the sign-in page's link opens
    form = asyncio.ensure_future(page.locator('input[name="login"]').wait_for(timeout=20_000))
    await asyncio.wait([caught, form], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if not form.done():
        form.cancel()
    if not caught.done():
        await login_at_provider(page, login)
    url = await asyncio.wait_for(caught, 20)
    await page.unroute(f"{BASE}/auth/login", follow)
    await page.unroute(f"{interaction}**", follow)
    return url


async def expect_refusal(page: Page, words: str, name: str, *, signed_in: bool = False) -> None:
    """The refusal page says why; no session was opened (one from before stays as it was)."""
    await expect(page.locator("#reason")).to_contain_text(words)
    await expect(page.locator("#again")).to_have_attribute("href", "/signin")
    await shot(page, f"signin-{name}")
    sessions = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    assert len(sessions) == (1 if signed_in else 0)


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

        # The service worker keeps the page (with the tip and CSRF token) for offline use;
        # signing out clears it, so the next person on this browser sees nothing of this one.
        await page.evaluate("navigator.serviceWorker.ready")
        await until(lambda: page.evaluate(CACHED_PAGES), lambda n: n > 0, "the page to be cached")
        await page.goto("/connectors")
        await page.locator("#signout").click()
        await expect(page).to_have_url(f"{BASE}/signin")
        assert await page.evaluate(CACHED_PAGES) == 0
        assert await page.evaluate(
            "navigator.serviceWorker.getRegistrations().then(r => r.length)") == 0
        assert await db.fetchval("SELECT count(*) FROM sessions WHERE user_id = $1", user_id) == 0
    finally:
        await forget(db, oidc_provider, login)


async def test_a_tampered_state_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    callback = await held_callback(page, oidc_provider, "browser-state")
    await page.goto(replaced(callback, state="tampered"))
    await expect_refusal(page, "state does not match", "tampered-state")


async def test_a_replayed_code_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    login = "browser-replay"
    try:
        used = await held_callback(page, oidc_provider, login)
        await page.goto(used)
        await expect(page).to_have_url(f"{BASE}/")
        # The same callback again: the sign-in it belonged to is over.
        before = [c["value"] for c in await page.context.cookies() if c["name"] == COOKIE]
        await page.goto(used)
        await expect_refusal(page, "no sign-in in progress", "replayed-callback", signed_in=True)
        assert [c["value"] for c in await page.context.cookies() if c["name"] == COOKIE] == before
        # A new sign-in answered with the old code: the provider refuses to redeem it twice.
        fresh = await held_callback(page, oidc_provider, login)
        await page.goto(replaced(fresh, code=parse_qs(urlsplit(used).query)["code"][0]))
        await expect_refusal(page, "already used or has expired", "replayed-code", signed_in=True)
    finally:
        await forget(db, oidc_provider, login)


async def test_an_id_token_for_another_nonce_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    await forget(db, oidc_provider, "browser-nonce")
    async def swap_nonce(route: Route) -> None:
        """oO's redirect to the provider, with the nonce of another sign-in put in."""
        response = await route.fetch(max_redirects=0)
        forged = replaced(response.headers["location"], nonce="nonce-of-another-sign-in")
        await route.fulfill(response=response, headers={**response.headers, "location": forged})

    await page.route(f"{BASE}/auth/login", swap_nonce)
    await page.goto("/signin")
    await page.locator("#signin").click()
    await login_at_provider(page, "browser-nonce")
    await expect_refusal(page, "nonce does not match", "wrong-nonce")
    assert await db.fetchval("SELECT count(*) FROM users WHERE oidc_subject = 'browser-nonce'") == 0


async def test_an_expired_id_token_is_refused(page: Page, db, oidc_provider):  # noqa: F811
    await forget(db, oidc_provider, "browser-expired")
    callback = await held_callback(page, oidc_provider, "browser-expired")
    await asyncio.to_thread(oidc_provider.expire_next_id_token)
    await page.goto(callback)
    await expect_refusal(page, "ID token has expired", "expired-id-token")
    assert await db.fetchval("SELECT count(*) FROM users WHERE oidc_subject = 'browser-expired'") == 0


async def test_connect_todoist_then_disconnect_then_delete_the_account(
        page: Page, db, oidc_provider, local_todoist):  # noqa: F811
    login = "browser-connector"
    await forget(db, oidc_provider, login)
    try:
        await page.goto("/signin")
        await page.locator("#signin").click()
        await login_at_provider(page, login)
        await expect(page).to_have_url(f"{BASE}/")
        user_id = await db.fetchval("SELECT id FROM users WHERE oidc_subject = $1", login)

        await page.goto("/connectors")
        todoist = page.locator("#connector-todoist")
        await expect(todoist).to_contain_text("data:read_write")
        await expect(todoist).to_have_attribute("data-connected", "false")
        await shot(page, "connectors-0-list")
        local_todoist.add_item(local_todoist.approve_as, "Buy stamps")
        await page.locator("#connect-todoist").click()  # to Todoist's consent and back
        await expect(page).to_have_url(f"{BASE}/connectors?done=connected")
        await expect(todoist).to_have_attribute("data-connected", "true")
        await shot(page, "connectors-1-connected")
        token = local_todoist.live_tokens_of(local_todoist.approve_as)[-1]
        assert await db.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1", user_id) == 1

        await page.locator("#disconnect-todoist").click()
        await expect(page.locator("#say")).to_contain_text("access revoked")
        await expect(todoist).to_have_attribute("data-connected", "false")
        assert token in local_todoist.revoked
        assert await db.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1", user_id) == 0

        # Everything held about the person, as a download.
        async with page.expect_download() as info:
            await page.locator("#export").click()
        export = json.loads(Path(await (await info.value).path()).read_text())
        assert export["account"]["id"] == str(user_id) and export["connectors"] == []
        assert export["account"]["oidc_subject"] == login

        # Deleting the account asks first.
        await page.locator("#delete-account").click()
        await expect(page).to_have_url(f"{BASE}/account/delete")
        await page.locator("#confirm").fill("yes")
        await page.locator("#delete").click()
        await expect(page.locator("#reason")).to_contain_text('Type "delete everything"')
        assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 1
        await shot(page, "account-delete-confirm")
        await page.locator("#confirm").fill("delete everything")
        await page.locator("#delete").click()
        await expect(page).to_have_url(f"{BASE}/signin?deleted=1")
        await expect(page.locator("#say")).to_contain_text("deleted")
        assert await db.fetchval("SELECT count(*) FROM users WHERE id = $1", user_id) == 0
        assert not [c for c in await page.context.cookies() if c["name"] == COOKIE and c["value"]]
        assert await page.evaluate(CACHED_PAGES) == 0
    finally:
        await forget(db, oidc_provider, login)
