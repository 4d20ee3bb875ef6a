"""The PWA in Chromium against the real web app, worker, Kafka and PostgreSQL.

Tips are decided as the engine decides them (a TipDecided on oo.tips.decided);
the worker's notifier stores them and wakes the page's live stream. Each test
waits on conditions, never on fixed sleeps, and leaves screenshots in
test-artifacts/browser/.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from domain.push import Notification, Withdrawal
from tests.browser.conftest import TIME_ZONE, Person, csp_violations, shot, until
from tests.helpers import consume_until
from topics.catalog import FEEDBACK
from topics.codec import decode
from topics.records import FeedbackGiven

# Each test within 60 s; the module's fixtures (Kafka, PostgreSQL, worker, web) have the global limit.
pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(60, func_only=True)]
OPEN = ("pending", "delivered", "seen")


async def open_app(page: Page, title: str | None) -> None:
    """Load the page and wait for its script; the tip (if any) must be in the first HTML."""
    response = await page.goto("/")
    assert response is not None and response.status == 200
    if title is not None:
        assert title in await response.text()  # server-rendered, no spinner
    await page.wait_for_selector("html[data-ready]", state="attached")


async def feedback(person: Person, decision_id: str, reaction: str) -> FeedbackGiven:
    """The feedback event the web published for this reaction (through the outbox)."""
    def mine(record: object) -> bool:
        value = getattr(record, "value", None)
        return bool(value) and decision_id.encode() in value and f'"{reaction}"'.encode() in value

    records = await consume_until(person.app.kafka, FEEDBACK.name, lambda kept: bool(kept),
                                  keep=mine, timeout=20)
    return decode(FeedbackGiven, records[0].value)


async def test_the_page_shows_the_tip_in_its_first_paint(page: Page, person: Person):
    tip = await person.decide("Call the dentist", body="Before noon, they close early.",
                              deep_link="https://todoist.com/showTask?id=42")
    await open_app(page, "Call the dentist")

    await expect(page.locator("#tip-title")).to_have_text("Call the dentist")
    await expect(page.locator("#tip-body")).to_have_text("Before noon, they close early.")
    await expect(page.locator("#tip-kind")).to_have_text("to do")
    await expect(page.locator("#empty")).to_be_hidden()
    await expect(page.locator("#open")).to_have_attribute("href", "https://todoist.com/showTask?id=42")
    assert await page.locator("#tip").get_attribute("data-decision-id") == tip.decision_id
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
    # Push is offered only after a gesture: a quiet button, no permission prompt on load.
    await expect(page.locator("#notify")).to_be_visible()
    assert await page.evaluate("Notification.permission") == "default"
    await shot(page, "1-tip")
    assert await csp_violations(page) == [] and page.problems == []  # type: ignore[attr-defined]


async def test_a_person_without_a_tip_sees_the_calm_empty_state(page: Page, person: Person):
    await open_app(page, None)
    await expect(page.locator("#empty")).to_have_text("Nothing for now.")
    await expect(page.locator("#tip")).to_be_hidden()
    await shot(page, "0-empty")
    assert await csp_violations(page) == [] and page.problems == []  # type: ignore[attr-defined]


SNOOZES = [  # choice, the browser's local time in Paris, snooze_until it sends
    ("hour", "2025-01-10T09:15", "2025-01-10T09:15:00.000Z"),
    ("tonight", "2025-01-10T09:15", "2025-01-10T19:00:00.000Z"),  # 20:00 in Paris
    ("tonight", "2025-01-10T19:30", "2025-01-10T19:30:00.000Z"),  # 20:00 is too close: in an hour
    ("tonight", "2025-01-10T22:00", "2025-01-10T22:00:00.000Z"),
    ("tomorrow", "2025-03-29T10:00", "2025-03-30T06:00:00.000Z"),  # 08:00 summer time, after DST
    ("tomorrow", "2025-01-11T01:30", "2025-01-11T07:00:00.000Z"),  # after midnight: this morning
]


async def test_snooze_choices_are_computed_on_the_local_clock(page: Page, person: Person):
    await open_app(page, None)
    got = [await page.evaluate("([w, t]) => oO.snoozeUntil(w, new Date(t)).toISOString()",
                               [when, local]) for when, local, _ in SNOOZES]
    assert got == [utc for _, _, utc in SNOOZES]


async def test_a_tap_marks_the_todo_done_and_the_next_tip_arrives_live_and_is_seen(
        page: Page, person: Person):
    first = await person.decide("Water the plants")
    await open_app(page, "Water the plants")
    await page.evaluate("window.__sameDocument = true")

    await page.locator("#tip").click()
    await expect(page.locator("#empty")).to_be_visible()
    await expect(page.locator("#say")).to_have_text("Done.")
    assert await person.status(first.decision_id, lambda s: s not in OPEN) == "done"
    await shot(page, "2-done")

    title = 'Breathe <b>out</b> & "slowly"'
    second = await person.decide(title, kind="advice", body="Four counts in, six out.")
    await expect(page.locator("#tip-title")).to_have_text(title, timeout=20_000)  # as text
    await expect(page.locator("#tip-kind")).to_have_text("advice")
    await expect(page.locator("#announce")).to_have_text(f"New advice: {title}")
    assert await page.evaluate("window.__sameDocument === true")  # live, no reload

    # On screen for 2 s: the page says it was seen, with how long.
    assert await person.status(second.decision_id, lambda s: s not in ("pending", "delivered")) == "seen"
    await shot(page, "3-live-tip")
    seen = await feedback(person, second.decision_id, "seen")
    assert seen.dwell_ms is not None and 1_500 <= seen.dwell_ms < 30_000
    done = await feedback(person, first.decision_id, "done")
    assert done.dwell_ms is not None and done.dwell_ms > 0
    assert await csp_violations(page) == [] and page.problems == []  # type: ignore[attr-defined]


async def test_a_long_press_opens_the_menu_and_snoozes_until_tonight(page: Page, person: Person):
    tip = await person.decide("Book the train tickets")
    await open_app(page, "Book the train tickets")
    box = await page.locator("#tip").bounding_box()
    assert box is not None

    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await page.mouse.down()
    await expect(page.locator("#menu")).to_be_visible()  # opened while still held
    await page.mouse.up()
    await expect(page.get_by_role("button", name="Save for later")).to_be_focused()
    assert await person.status(tip.decision_id) in OPEN  # holding is not a tap
    await shot(page, "4-menu")

    await page.get_by_role("button", name="Tonight").click()
    now = datetime.now(ZoneInfo(TIME_ZONE))
    await expect(page.locator("#menu")).to_be_hidden()
    await expect(page.locator("#say")).to_contain_text("Snoozed until")
    assert await person.status(tip.decision_id, lambda s: s not in OPEN) == "snoozed"
    until_at = await person.db.fetchval(
        "SELECT snooze_until FROM tip_instances WHERE decision_id = $1", tip.decision_id)
    tonight = max(now.replace(hour=20, minute=0, second=0, microsecond=0), now + timedelta(hours=1))
    assert abs((until_at - tonight).total_seconds()) < 60, (until_at, tonight)
    await shot(page, "5-snoozed")


async def test_why_now_shows_the_decision_reason_on_request(page: Page, person: Person):
    why = "free_window: meeting ended 3 min ago, free for 40 min; random picked todo"
    await person.decide("Reply to Ana", reason=why)
    await open_app(page, "Reply to Ana")
    await page.locator("#tip").click(button="right")
    button = page.get_by_role("button", name="Why now?")
    await expect(page.locator("#why")).to_be_hidden()
    await expect(button).to_have_attribute("aria-expanded", "false")
    await button.click()
    await expect(page.locator("#why")).to_have_text(why)
    await expect(page.locator("#why")).to_be_visible()
    await expect(button).to_have_attribute("aria-expanded", "true")
    await shot(page, "4b-why-now")
    await page.keyboard.press("Escape")
    await expect(page.locator("#menu")).to_be_hidden()

    # A tip arriving live brings its own reason; the menu opens with it folded again.
    await person.decide("Water the plants", reason="morning_start: first app opening of the day")
    await expect(page.locator("#tip-title")).to_have_text("Water the plants")
    await page.locator("#tip").click(button="right")
    await expect(page.locator("#why")).to_be_hidden()
    await button.click()
    await expect(page.locator("#why")).to_have_text("morning_start: first app opening of the day")


async def test_the_keyboard_and_right_click_reach_the_menu_and_enter_acknowledges(
        page: Page, person: Person):
    tip = await person.decide("Stand up and stretch", kind="advice")
    await open_app(page, "Stand up and stretch")

    await page.keyboard.press("Tab")
    await expect(page.locator("#tip")).to_be_focused()
    assert await page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    await shot(page, "8-keyboard-focus")
    await page.keyboard.press("m")
    await expect(page.get_by_role("button", name="Save for later")).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(page.get_by_role("button", name="1 hour")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#menu")).to_be_hidden()
    await expect(page.locator("#tip")).to_be_focused()
    await page.keyboard.press("Shift+F10")
    await expect(page.locator("#menu")).to_be_visible()
    await page.keyboard.press("Escape")

    await page.locator("#tip").click(button="right")
    await expect(page.locator("#menu")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("#menu")).to_be_hidden()
    await expect(page.locator("#tip")).to_be_focused()
    assert await person.status(tip.decision_id) in OPEN

    await page.keyboard.press("Enter")
    await expect(page.locator("#say")).to_have_text("Noted.")
    assert await person.status(tip.decision_id, lambda s: s not in OPEN) == "ack"


async def test_the_service_worker_installs_and_serves_the_page_offline(page: Page, person: Person):
    await person.decide("Take the bins out")
    await open_app(page, "Take the bins out")
    await page.wait_for_selector("html[data-sw=ready]", state="attached")
    cached = await page.evaluate(
        "caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys()))))"
        ".then(all => all.flat().map(r => new URL(r.url).pathname))")
    assert {"/", "/static/oo.js", "/static/oo.css", "/manifest.webmanifest"} <= set(cached)

    await page.context.set_offline(True)
    try:
        await page.reload()
        await expect(page.locator("#tip-title")).to_have_text("Take the bins out")
        await shot(page, "6-offline")
    finally:
        await page.context.set_offline(False)


async def test_a_push_shows_one_notification_and_a_withdrawal_closes_it(page: Page, person: Person):
    context = page.context
    await context.grant_permissions(["notifications"], origin=person.app.base)
    await open_app(page, None)
    await page.wait_for_selector("html[data-sw=ready]", state="attached")
    cdp = await context.new_cdp_session(page)
    registrations: list[dict] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda event: registrations.extend(event["registrations"]))
    await cdp.send("ServiceWorker.enable")

    async def ours() -> list[dict]:
        return [r for r in registrations
                if r["scopeURL"] == person.app.base + "/" and not r["isDeleted"]]

    registration = (await until(ours, bool, "the service worker's registration", 10))[-1]

    async def push(payload: bytes) -> None:
        await cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": person.app.base, "registrationId": registration["registrationId"],
            "data": payload.decode()})

    async def shown() -> list[dict]:
        worker = context.service_workers[-1]
        return await worker.evaluate("self.registration.getNotifications().then(ns => ns.map("
                                     "n => ({title: n.title, body: n.body, tag: n.tag, data: n.data})))")

    # The page is in front of the person: it is told (and shows the tip live), no notification.
    await page.evaluate("navigator.serviceWorker.addEventListener('message', e => window.__told = e.data)")
    await push(Notification("d-0", "advice:walk", "advice", "Walk a little").render())
    told = await until(lambda: page.evaluate("window.__told || null"), bool, "the page to be told", 10)
    assert told == {"type": "tip", "decision_id": "d-0"}
    assert await page.evaluate("navigator.serviceWorker.ready.then(r => r.getNotifications())"
                               ".then(ns => ns.length)") == 0

    # The app is closed (no page of ours open): pushes become notifications.
    await page.goto("about:blank")
    await push(Notification("d-1", "advice:water", "advice", "Drink water", "A glass, now.").render())
    await push(Notification("d-2", "todo:7", "todo", "Call Sam", "", url="https://example.org/t/7").render())
    notes = await until(shown, lambda ns: [n["title"] for n in ns] == ["Call Sam"],
                        "the second tip to replace the first", 15)
    assert notes[0]["tag"] == "oo-tip" and notes[0]["data"]["decision_id"] == "d-2"
    assert notes[0]["data"]["url"] == "https://example.org/t/7"

    await push(Withdrawal("d-1").render())  # an older tip: nothing to close
    await push(Withdrawal("d-2").render())
    await until(shown, lambda ns: ns == [], "the withdrawal to close the notification", 15)


async def test_a_reaction_made_offline_is_sent_when_back_online(page: Page, person: Person):
    tip = await person.decide("Reply to Alex")
    await open_app(page, "Reply to Alex")

    await page.context.set_offline(True)
    try:
        await page.locator("#tip").click()
        await expect(page.locator("#empty")).to_be_visible()
        queued = await until(lambda: page.evaluate("oO.queued()"), lambda q: len(q) == 1,
                             "the reaction to be queued", 10)
        assert queued[0]["decision_id"] == tip.decision_id and queued[0]["body"]["reaction"] == "done"
        assert await person.status(tip.decision_id) in OPEN
        await shot(page, "7-offline-reaction")
    finally:
        await page.context.set_offline(False)

    assert await person.status(tip.decision_id, lambda s: s not in OPEN) == "done"
    await until(lambda: page.evaluate("oO.queued()"), lambda q: q == [], "the queue to empty", 10)


async def test_the_app_is_installable(page: Page, person: Person):
    await open_app(page, None)
    await page.wait_for_selector("html[data-sw=ready]", state="attached")
    cdp = await page.context.new_cdp_session(page)
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and json.loads(manifest["data"])["display"] == "standalone"
    result = await cdp.send("Page.getInstallabilityErrors")
    assert result["installabilityErrors"] == []
