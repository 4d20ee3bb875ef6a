"""The Todoist connector against a local Todoist speaking Todoist's API v1.

Connect by OAuth from the connectors page, task signals on oo.signals.tasks,
incremental reads by sync token, `done` on a todo tip completes the task at
Todoist, disconnect revokes and wipes, expired tokens are refreshed without a
token ever reaching a log line.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.vault import new_key
from tests.conftest import port
from tests.helpers import consume_until
from tests.integration.test_api import Person, give_tip
from tests.peers.todoist import BASE as TODOIST, LocalTodoist, todoist  # noqa: F401 (fixture)
from topics.admin import ensure_topics
from topics.catalog import SIGNALS
from topics.codec import decode
from topics.records import TaskChanged
from web.app import create_app
from web.connectors import SERVICE
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration
APP_PORT = port(28740)
BASE = f"http://127.0.0.1:{APP_PORT}"
CALLBACK = f"{BASE}/connectors/todoist/callback"
KEYS = (("k1", base64.b64decode(new_key())),)


def with_todoist(settings, peer: LocalTodoist, tmp_path):
    return dataclasses.replace(
        settings, public_url=BASE, vault_keys=KEYS, app_id=f"oo-test-{uuid.uuid4().hex[:8]}",
        todoist_client_id=peer.client_id, todoist_client_secret=peer.client_secret,
        todoist_auth_url=TODOIST, todoist_api_url=TODOIST, vapid_private_key=tmp_path / "v.pem")


@pytest.fixture
async def server(settings, kafka, postgres, todoist, tmp_path) -> AsyncIterator[TestServer]:  # noqa: F811
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    todoist.redirect_uri = CALLBACK
    async with TestServer(create_app(with_todoist(settings, todoist, tmp_path)),
                          host="127.0.0.1", port=APP_PORT) as running:
        yield running


@pytest.fixture
async def person(pool) -> AsyncIterator[Person]:
    user_id = await pool.fetchval("INSERT INTO users (time_zone) VALUES ('Europe/Paris') RETURNING id")
    session = await open_session(pool, user_id)
    yield Person(user_id, session.token, session.csrf_token)
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def connect(http: aiohttp.ClientSession, person: Person) -> aiohttp.ClientResponse:
    """The connectors page's Connect button, Todoist's consent, and back."""
    start = await http.post(f"{BASE}/connectors/todoist/connect", allow_redirects=False,
                            data={"csrf_token": person.csrf},
                            headers={"Cookie": f"{COOKIE}={person.token}"})
    assert start.status == 303, await start.text()
    assert start.headers["Location"].startswith(f"{TODOIST}/oauth/authorize?")
    consent = await http.get(start.headers["Location"], allow_redirects=False)
    assert consent.status == 302
    back = consent.headers["Location"]
    assert back.startswith(CALLBACK)
    return await http.get(back, allow_redirects=False, headers={"Cookie": f"{COOKIE}={person.token}"})


async def task_signals(kafka: str, person: Person, count: int) -> list[TaskChanged]:
    key = str(person.id).encode()
    records = await consume_until(kafka, SIGNALS["tasks"].name, lambda kept: len(kept) >= count,
                                  keep=lambda r: r.key == key, timeout=30)
    return [decode(TaskChanged, r.value) for r in records]


async def test_connecting_todoist_sends_the_open_tasks_as_signals(
        server, http, pool, kafka, person, todoist):  # noqa: F811
    account = todoist.approve_as
    dentist = todoist.add_item(account, "Call the dentist", priority=4,
                               due={"date": "2026-12-03", "timezone": None, "string": "Dec 3",
                                    "lang": "en", "is_recurring": False})
    bank = todoist.add_item(account, "Pay the bank", due={
        "date": "2026-12-02T15:00:00Z", "timezone": "Europe/Paris", "string": "",
        "lang": "en", "is_recurring": False})
    done = todoist.add_item(account, "Already done")
    todoist.change(account, done.id, checked=True)

    back = await connect(http, person)
    assert back.status == 303 and back.headers["Location"] == "/connectors?done=connected"

    signals = {s.task_id: s for s in await task_signals(kafka, person, 2)}
    assert set(signals) == {f"todoist:{dentist.id}", f"todoist:{bank.id}"}
    call = signals[f"todoist:{dentist.id}"]
    assert (call.change, call.title, call.priority, call.source) == ("created", "Call the dentist",
                                                                     4, "todoist")
    assert call.due_at == datetime(2026, 12, 3, 22, 59, tzinfo=UTC)  # 23:59 in Paris
    assert signals[f"todoist:{bank.id}"].due_at == datetime(2026, 12, 2, 15, tzinfo=UTC)
    row = await pool.fetchrow("SELECT * FROM credentials WHERE user_id = $1", person.id)
    assert row["connector"] == "todoist" and row["scopes"] == ["data:read_write"]
    assert row["key_id"] == "k1" and row["cursor"]
    token = todoist.live_tokens_of(account)[0]
    assert token.encode() not in bytes(row["ciphertext"])

    page = await http.get(f"{BASE}/connectors", headers={"Cookie": f"{COOKIE}={person.token}"})
    html = await page.text()
    assert 'data-connected="true"' in html and "data:read_write" in html and "Disconnect" in html


async def test_later_reads_bring_only_what_changed(server, http, kafka, person, todoist):  # noqa: F811
    account = todoist.approve_as
    first = todoist.add_item(account, "Water the plants")
    await connect(http, person)
    await task_signals(kafka, person, 1)

    todoist.change(account, first.id, checked=True, completed_at="2026-12-01T10:00:00Z")
    later = todoist.add_item(account, "Book the train")
    count = await server.app[SERVICE].sync(person.id, "todoist", datetime.now(UTC))
    assert count == 2
    signals = await task_signals(kafka, person, 3)
    changes = sorted((s.task_id, s.change) for s in signals[1:])
    assert changes == sorted([(f"todoist:{first.id}", "completed"),
                              (f"todoist:{later.id}", "updated")])
    # Nothing changed: nothing sent.
    assert await server.app[SERVICE].sync(person.id, "todoist", datetime.now(UTC)) == 0


async def test_a_credential_that_does_not_open_stops_only_its_own_sync(
        server, http, pool, kafka, person, todoist):  # noqa: F811
    account = todoist.approve_as
    assert (await connect(http, person)).status == 303
    # Someone else's row, sealed under a key this process does not have (retired, or tampered).
    other = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    await pool.execute(
        "INSERT INTO credentials (user_id, connector, key_id, ciphertext, scopes) "
        "VALUES ($1, 'todoist', 'gone', $2, '{}')", other, bytes(64))
    await pool.execute("UPDATE credentials SET updated_at = now() - interval '1 hour'")
    todoist.add_item(account, "Renew the passport")
    count = await server.app[SERVICE].sync_everyone(datetime.now(UTC))
    assert count == 1  # this person's new task; the other row was skipped, not fatal
    await pool.execute("DELETE FROM users WHERE id = $1", other)


async def test_done_on_a_todo_tip_completes_the_task_at_todoist(
        server, http, pool, kafka, person, todoist):  # noqa: F811
    account = todoist.approve_as
    item = todoist.add_item(account, "Send the invoice")
    await connect(http, person)
    decision = await give_tip(pool, person, title="Send the invoice")
    await pool.execute("UPDATE tip_instances SET tip_id = $2 WHERE decision_id = $1", decision,
                       f"todo:todoist:{item.id}")  # the engine's id for this todo
    tapped = await http.post(f"{BASE}/api/tips/{decision}/reactions", json={"reaction": "done"},
                             headers=person.headers())
    assert tapped.status == 202
    for _ in range(150):
        if todoist.account(account).items[item.id].checked:
            break
        await asyncio.sleep(0.2)
    assert todoist.account(account).items[item.id].checked


async def test_disconnect_revokes_at_todoist_and_wipes_the_tokens(
        server, http, pool, person, todoist):  # noqa: F811
    await connect(http, person)
    token = todoist.live_tokens_of(todoist.approve_as)[0]
    refused = await http.post(f"{BASE}/connectors/todoist/disconnect", allow_redirects=False,
                              headers={"Cookie": f"{COOKIE}={person.token}"})
    assert refused.status == 403  # no CSRF token
    gone = await http.post(f"{BASE}/connectors/todoist/disconnect", allow_redirects=False,
                           data={"csrf_token": person.csrf},
                           headers={"Cookie": f"{COOKIE}={person.token}"})
    assert gone.status == 303 and gone.headers["Location"] == "/connectors?done=disconnected"
    assert token in todoist.revoked and todoist.live_tokens_of(todoist.approve_as) == []
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1", person.id) == 0
    page = await http.get(f"{BASE}/connectors?done=disconnected",
                          headers={"Cookie": f"{COOKIE}={person.token}"})
    assert "access revoked" in await page.text()


async def test_expired_tokens_are_refreshed_and_never_logged(
        server, http, pool, kafka, person, todoist, caplog):  # noqa: F811
    todoist.expiring_tokens = 1.0  # seconds
    caplog.set_level(logging.DEBUG)
    account = todoist.approve_as
    todoist.add_item(account, "Renew the passport")
    await connect(http, person)
    await task_signals(kafka, person, 1)
    first = todoist.live_tokens_of(account)[0]
    refresh = next(iter(todoist.refresh_tokens))
    await asyncio.sleep(1.2)  # Todoist's clock: the token is now expired
    todoist.add_item(account, "Pick up the parcel")
    assert await server.app[SERVICE].sync(person.id, "todoist", datetime.now(UTC)) == 1
    now_live = todoist.live_tokens_of(account)
    assert first not in now_live or len(now_live) > 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "tokens refreshed" in logged
    for secret in {first, refresh, *now_live, *todoist.refresh_tokens}:
        assert secret not in logged
        assert secret not in caplog.text


async def test_a_callback_started_by_another_session_is_refused(
        server, http, pool, person, todoist):  # noqa: F811
    other_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    try:
        other = await open_session(pool, other_id)
        start = await http.post(f"{BASE}/connectors/todoist/connect", allow_redirects=False,
                                data={"csrf_token": person.csrf},
                                headers={"Cookie": f"{COOKIE}={person.token}"})
        consent = await http.get(start.headers["Location"], allow_redirects=False)
        # The victim is lured to the attacker's callback (with the attacker's code).
        stolen = await http.get(consent.headers["Location"], allow_redirects=False,
                                headers={"Cookie": f"{COOKIE}={other.token}"})
        assert stolen.status == 400
        assert "not started from this session" in await stolen.text()
        assert await pool.fetchval("SELECT count(*) FROM credentials WHERE user_id = ANY($1)",
                                   [person.id, other_id]) == 0
    finally:
        await pool.execute("DELETE FROM users WHERE id = $1", other_id)


async def test_a_refused_consent_says_so(server, http, pool, person, todoist):  # noqa: F811
    todoist.deny_next = True
    back = await connect(http, person)
    assert back.status == 400
    assert re.search(r"Connection refused: todoist access was not granted", await back.text())
    assert await pool.fetchval("SELECT count(*) FROM credentials WHERE user_id = $1", person.id) == 0


async def test_the_connectors_page_needs_a_session(server, http):
    response = await http.get(f"{BASE}/connectors", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/signin"

