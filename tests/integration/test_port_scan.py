"""Scan every port a real `oo worker` and `oo web` listen on: none serves personal data
without a session or a token.

A seeded person has a name, a tip and feature state in the worker's tables (a
habit they logged), each carrying a marker string. The ports are not taken from
the settings but discovered from the processes' own listening sockets
(/proc/<pid>/net/tcp{,6} against the socket inodes in /proc/<pid>/fd), so a
port opened by a library (Faust's web server, say) is scanned too. Every
port gets every path an attacker would try, without credentials: Faust's table
and router pages, the API, the export, /metrics. No body may contain the
person's id or a marker; the personal paths must answer 401, 403, 404 or 405;
and every socket is bound to loopback.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import os
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import oo_test_environ
from tests.helpers import oo_process, produce, stop_process, wait_http
from tests.integration.conftest import ARTIFACTS, Worker
from tests.integration.test_api import Person, give_tip
from topics.admin import ensure_topics
from topics.catalog import SIGNALS
from topics.codec import encode
from topics.records import HabitLogged
from web.session import open_session

pytestmark = pytest.mark.integration
TOKEN = "port-scan-metrics-token-0123456789"
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp{,6} writes each 32-bit word of the address in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _descendants(pid: int) -> set[int]:
    found, todo = {pid}, [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by `pid` or its children."""
    sockets: set[tuple[str, int]] = set()
    for process in _descendants(pid):
        inodes = set()
        for fd in Path(f"/proc/{process}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
        for table in ("tcp", "tcp6"):
            for line in Path(f"/proc/{process}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == LISTEN and inode in inodes:
                    host, port = local.split(":")
                    sockets.add((_address(host), int(port, 16)))
    return sockets


def fetch(url: str) -> tuple[int, bytes]:
    """GET without any credentials; a refused or non-HTTP port answers status 0."""
    request = urllib.request.Request(url, headers={"Accept": "*/*"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(256 * 1024)
    except urllib.error.HTTPError as err:
        return err.code, err.read(256 * 1024)
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError):
        return 0, b""


def paths(user_id: str, decision_id: str) -> tuple[list[str], list[str]]:
    """(paths that must refuse without credentials, open paths), tried on every port."""
    personal = [
        # Faust's built-in views: the tables hold each person's state.
        "/table/", "/table/features/", f"/table/features/{user_id}/", f"/table/timers/{user_id}/",
        "/router/", f"/router/features/{user_id}/", "/graph/", "/assignment/", "/performance/",
        # The web app's personal pages and the metrics.
        "/api/tip", "/api/me", "/me/export", "/api/preferences", "/api/ingest-tokens",
        "/api/events", f"/api/tips/{decision_id}/reactions", "/api/push/subscriptions",
        "/metrics",
    ]
    public = ["/", "/health", "/ready", "/signin", "/connectors", "/account/delete",
              "/api/openapi.yaml", "/manifest.webmanifest"]
    return personal, public


async def seed(dsn: str, kafka: str, marker: str) -> tuple[str, str]:
    """A person with a name, a tip and a logged habit, each carrying `marker`."""
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (display_name) VALUES ($1) RETURNING id", f"Name {marker}")
        session = await open_session(conn, user_id)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        decision = await give_tip(pool, Person(user_id, session.token, session.csrf_token),
                                  title=f"Tip {marker}")
    finally:
        await pool.close()
    habit = HabitLogged(event_id=f"scan-{marker}", user_id=str(user_id),
                        occurred_at=datetime.now(UTC), source="test", change="defined",
                        habit_id="h-scan", name=f"Habit {marker}", usual_minute=7 * 60)
    await produce(kafka, SIGNALS["habits"].name, [(str(user_id).encode(), encode(habit))])
    return str(user_id), decision


def folded(worker: Worker) -> int:
    request = urllib.request.Request(f"{worker.base}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("oo_signals_folded_total{"))


@pytest.fixture
def processes(settings, kafka, postgres, tmp_path):
    asyncio.run(ensure_topics(kafka, partitions=settings.topic_partitions,
                              replication=settings.topic_replication, log=lambda _: None))
    worker = Worker(settings, f"oo-test-{uuid.uuid4().hex[:8]}", env={"OO_METRICS_TOKEN": TOKEN})
    worker.start()
    log = ARTIFACTS / "web-port-scan.log"
    env = {**oo_test_environ(), "OO_METRICS_TOKEN": TOKEN,
           "OO_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem")}
    web = oo_process(["web"], env, log)
    try:
        wait_http(f"http://127.0.0.1:{settings.web_port}/health", process=web, log=log)
        yield worker, web
    finally:
        stop_process(web)
        worker.stop()


def test_no_port_of_the_worker_or_the_web_serves_personal_data_without_credentials(
        processes, settings, kafka, postgres):
    worker, web = processes
    marker = uuid.uuid4().hex
    user_id, decision = asyncio.run(seed(postgres, kafka, marker))
    for _ in range(300):  # the worker's table holds the person's state before the scan
        if folded(worker) >= 1:
            break
        asyncio.run(asyncio.sleep(0.1))
    else:
        pytest.fail("the worker never folded the seeded signal")

    sockets = listening(worker.process.pid) | listening(web.pid)
    ports = {port for _, port in sockets}
    assert {settings.worker_web_port, settings.web_port} <= ports, sockets
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in sockets), sockets

    personal, public = paths(user_id, decision)
    secrets = [user_id, marker, decision]
    leaks, answered = [], []
    for port in sorted(ports):
        for path in personal + public:
            status, body = fetch(f"http://127.0.0.1:{port}{path}")
            answered.append((port, path, status))
            if any(secret.encode() in body for secret in secrets):
                leaks.append((port, path, status, body[:200]))
            elif path in personal and status not in (0, 401, 403, 404, 405):
                leaks.append((port, path, status, body[:200]))
    assert not leaks, leaks
    # The scan reached both servers: each answered its own pages.
    assert (settings.worker_web_port, "/health", 200) in answered
    assert (settings.web_port, "/health", 200) in answered
    assert (settings.worker_web_port, "/metrics", 401) in answered
    assert (settings.web_port, "/metrics", 401) in answered
