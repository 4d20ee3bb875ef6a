"""The web process (and with it the outbox relay) is SIGKILLed at random points under load.

People post context signals through the API while `oo web` is killed and
restarted three times. At the end: no committed outbox row is left
unpublished, every accepted (202) signal reached Kafka, and the worker folded
each distinct event exactly once however many times the relay published it.
The raw number of events published more than once is printed.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter

import aiohttp
import asyncpg
import pytest

from tests.conftest import oo_test_environ, port
from tests.faults.conftest import ARTIFACTS
from tests.helpers import consume_until, oo_process, read_to_end, stop_process, wait_http
from topics.catalog import SIGNALS
from topics.codec import decode
from topics.records import ContextObserved
from web.session import COOKIE, open_session

pytestmark = [pytest.mark.faults, pytest.mark.integration]
PEOPLE = 30
WEB_PORT = port(28380)


class Web:
    def __init__(self, bootstrap: str, vapid: str) -> None:
        self.env = {**oo_test_environ(), "OO_KAFKA_BOOTSTRAP": bootstrap,
                    "OO_WEB_PORT": str(WEB_PORT), "OO_VAPID_PRIVATE_KEY": vapid}
        self.process = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = ARTIFACTS / f"relay-crash-web-{self.starts}.log"
        self.process = oo_process(["web"], self.env, log)
        wait_http(f"http://127.0.0.1:{WEB_PORT}/health", process=self.process, log=log)

    def kill(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGKILL)


@pytest.fixture
def web(topics, tmp_path):
    running = Web(topics, str(tmp_path / "vapid.pem"))
    yield running
    running.kill()  # whatever failed, no web process is left behind


async def test_killing_the_relay_loses_nothing_and_doubles_no_effect(
        topics, workers, postgres, web, capsys):
    bootstrap = topics
    db = await asyncpg.connect(postgres)
    sessions = {}
    for _ in range(PEOPLE):
        user_id = await db.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
        sessions[str(user_id)] = await open_session(db, user_id)
    keys = {u.encode() for u in sessions}
    worker = workers(0)
    worker.start()
    web.start()
    accepted: Counter[str] = Counter()
    attempts = 0
    stop = asyncio.Event()

    async def person(user: str, session) -> None:
        nonlocal attempts
        headers = {"Cookie": f"{COOKIE}={session.token}", "X-CSRF-Token": session.csrf_token}
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                attempts += 1
                try:
                    async with http.post(f"http://127.0.0.1:{WEB_PORT}/api/context",
                                         json={"kind": "page_visible"}, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=5)) as response:
                        if response.status == 202:
                            accepted[user] += 1
                except (aiohttp.ClientError, TimeoutError):
                    pass  # the web is down: a real page would keep it and retry later
                await asyncio.sleep(random.uniform(0.05, 0.4))

    load = [asyncio.create_task(person(u, s)) for u, s in sessions.items()]
    rng = random.Random(5)
    try:
        for _ in range(3):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            web.kill()
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await asyncio.to_thread(web.start)
        await asyncio.sleep(2)
    finally:
        stop.set()
        await asyncio.gather(*load)

    deadline = time.monotonic() + 60
    while await db.fetchval("SELECT count(*) FROM outbox WHERE key = ANY($1::text[])",
                            list(sessions)):
        assert time.monotonic() < deadline, "committed outbox rows were never published"
        await asyncio.sleep(0.5)
    web.kill()
    published = [decode(ContextObserved, r.value) for r in
                 await read_to_end(bootstrap, SIGNALS["context"].name, keep=lambda r: r.key in keys)]
    distinct: dict[str, set[str]] = {u: set() for u in sessions}
    for event in published:
        distinct[event.user_id].add(event.event_id)
    repeats = len(published) - sum(len(v) for v in distinct.values())
    short = {u: (len(distinct[u]), accepted[u]) for u in sessions if len(distinct[u]) < accepted[u]}
    assert not short, f"accepted signals missing from Kafka (published, accepted): {short}"

    changelog = f"{worker.app_id}-features-changelog"

    def folded(kept: list) -> bool:
        latest = {r.key: r.value for r in kept}
        return all(latest.get(u.encode()) is not None and json.loads(
            latest[u.encode()])["signals_by_domain"].get("context", 0) == len(distinct[u])
            for u in sessions)

    await consume_until(bootstrap, changelog, folded, keep=lambda r: r.key in keys, timeout=120)
    await db.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", list(sessions))
    await db.close()
    with capsys.disabled():
        print(f"\nrelay crash: {attempts} requests, {sum(accepted.values())} accepted, "
              f"{web.starts - 1} SIGKILLs of the web process; {len(published)} published, "
              f"{repeats} of them repeats; each distinct event folded once")
