"""Browser fixtures: Debian's Chromium (Playwright) on the real `oo web` and `oo worker`.

The web process serves the page and the API; the worker's notify agent stores
the tips these tests decide (a `TipDecided` on oo.tips.decided, as the engine
would send it) and wakes the page's live stream. Each test gets a new person
with an open session (the `oo_session` cookie) and a fresh Chromium profile.

Chromium is /usr/bin/chromium (Debian's package, installed by `make bootstrap`);
`playwright install` is never run. A persistent profile (not an incognito
context) so the page is installable and the service worker behaves as in use.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from tests.conftest import oo_test_environ, port
from tests.helpers import ROOT, oo_process, produce, stop_process, wait_http
from tests.integration.conftest import Worker
from topics.admin import ensure_topics
from topics.catalog import TIPS_DECIDED
from topics.codec import encode
from topics.records import Tip, TipDecided
from web.session import COOKIE, CSRF_HEADER, open_session

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WEB_PORT = port(28280)  # its own: test_dev uses 28180, the sign-in test 28720
BASE = f"http://127.0.0.1:{WEB_PORT}"
TIME_ZONE = "Europe/Paris"
SHOTS = ROOT / "test-artifacts" / "browser"


def pytest_configure(config: pytest.Config) -> None:
    # Also wanted in pyproject's markers (strict markers); registered here so the folder runs alone.
    config.addinivalue_line("markers", "browser: drives Debian's Chromium with Playwright")


@dataclass
class App:
    """The running web app and the worker behind it."""

    base: str
    kafka: str
    database_url: str
    worker: Worker


@pytest.fixture(scope="module")
async def app(kafka, postgres, settings) -> AsyncIterator[App]:
    """`oo web` on its own port and an `oo worker` with a fresh app id."""
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    log = SHOTS.parent / "browser-web.log"
    web = oo_process(["web"], {**oo_test_environ(), "OO_WEB_PORT": str(WEB_PORT)}, log)
    worker = Worker(settings, f"oo-browser-{uuid.uuid4().hex[:8]}")
    try:
        await asyncio.to_thread(worker.start)
        await asyncio.to_thread(wait_http, f"{BASE}/ready", process=web, log=log)
        yield App(BASE, kafka, postgres, worker)
    finally:
        worker.stop()
        stop_process(web)


@dataclass
class Person:
    """A person with an open session, and a connection to look at their rows."""

    user_id: uuid.UUID
    token: str
    csrf_token: str
    db: asyncpg.Connection
    app: App

    def call(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """An API call with this person's cookie and CSRF token (blocking; use to_thread)."""
        request = urllib.request.Request(
            self.app.base + path, method=method, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Cookie": f"{COOKIE}={self.token}",
                     CSRF_HEADER: self.csrf_token})
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None

    async def decide(self, title: str, *, kind: str = "todo", body: str = "",
                     deep_link: str | None = None,
                     reason: str = "app_opened: browser test") -> TipDecided:
        """Decide a tip for this person the way the engine does, and wait until it is stored."""
        now = datetime.now(UTC)
        decision_id = uuid.uuid4().hex
        record = TipDecided(
            event_id=decision_id, user_id=str(self.user_id), occurred_at=now, source="test",
            decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
            policy="random", propensity=0.5, reason=reason,
            tip=Tip(id=f"{kind}:{decision_id[:6]}", kind=kind, title=title, body=body,  # type: ignore[arg-type]
                    source="test", deep_link=deep_link),
            context_snapshot={"moment": "app_opened"}, expires_at=now + timedelta(hours=4))
        await produce(self.app.kafka, TIPS_DECIDED.name, [(str(self.user_id).encode(), encode(record))])
        await self.status(decision_id, lambda s: s is not None, "the notifier to store the tip")
        return record

    async def status(self, decision_id: str, ok: Callable[[str | None], bool] = bool,
                     what: str = "the tip's status", timeout: float = 30.0) -> str | None:
        """Wait until the tip's status satisfies `ok`; return it."""
        async def check() -> str | None:
            return await self.db.fetchval(
                "SELECT status FROM tip_instances WHERE decision_id = $1", decision_id)

        return await until(check, ok, what, timeout)


async def until(read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], what: str,
                timeout: float = 30.0) -> Any:
    """Poll `read` until `ok(value)`; fail with `what` and the last value after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {value!r})"
        await asyncio.sleep(0.2)


@pytest.fixture
async def person(app: App) -> AsyncIterator[Person]:
    """A new person, signed in. Their daily budget is 0 so the engine decides nothing for
    them on its own (the page's app_opened is a real moment): only the tests' tips show."""
    db = await asyncpg.connect(app.database_url)
    user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(db, user_id)
    who = Person(user_id, session.token, session.csrf_token, db, app)
    status, _ = await asyncio.to_thread(
        who.call, "PUT", "/api/preferences", {"time_zone": TIME_ZONE, "daily_budget": 0})
    assert status == 200
    try:
        yield who
    finally:
        await db.execute("DELETE FROM users WHERE id = $1", user_id)
        await db.close()


@pytest.fixture
async def context(app: App, person: Person, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh Chromium profile signed in as `person` (phone-sized, in Paris time)."""
    async with async_playwright() as playwright:
        browser_context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            base_url=app.base, viewport={"width": 412, "height": 860}, locale="en-GB",
            timezone_id=TIME_ZONE, service_workers="allow")
        await browser_context.add_cookies([{"name": COOKIE, "value": person.token, "url": app.base,
                                            "httpOnly": True, "sameSite": "Lax"}])
        await browser_context.add_init_script(
            "addEventListener('securitypolicyviolation', e => (window.__csp = window.__csp || [])"
            ".push(e.violatedDirective + ' ' + e.blockedURI));")
        try:
            yield browser_context
        finally:
            await browser_context.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    """The profile's first tab, recording its problems in `page.problems`."""
    tab = context.pages[0] if context.pages else await context.new_page()
    problems: list[str] = []  # uncaught errors and console errors
    tab.on("pageerror", lambda err: problems.append(f"pageerror: {err}"))
    tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
           if msg.type == "error" else None)
    tab.problems = problems  # type: ignore[attr-defined]
    return tab


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def csp_violations(page: Page) -> list[str]:
    return await page.evaluate("window.__csp || []")
