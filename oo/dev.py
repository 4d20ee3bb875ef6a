"""`oo dev`: start everything, print the URL, and on Ctrl-C stop all of it.

The worker and web app run as child processes in their own sessions, so the
terminal's Ctrl-C reaches only this supervisor, which then stops them in
order (web, worker) and finally the infrastructure it started itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from oo.infra.common import InfraError, stop_pid
from oo.settings import Settings

Log = Callable[[str], None]
READY_TIMEOUT = 120.0


DEMO_NAME = "oO demo"  # users.display_name of demo people, so the next run can remove them


def _demo_args(prefix: str) -> list[str]:
    return ["simulate", "--users", "1", "--days", "7", "--speed", "60", "--prefix", prefix,
            "--seed", "7", "--time-zone", _local_zone()]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    may_finish: bool = False  # a child whose clean exit is normal (the demo simulation)


class _Stop(Exception):
    """Raised from the signal handler to leave the wait loop."""


def run_dev(settings: Settings, *, keep_infra: bool, demo: bool, log: Log) -> int:
    """Run the whole stack until Ctrl-C or SIGTERM; return the exit status."""
    from oo.cli import infra_up
    from oo.infra.kafka import LocalKafka
    from oo.infra.postgres import LocalPostgres

    def on_signal(signum: int, frame: object) -> None:
        raise _Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children: list[Child] = []
    started: tuple[bool, bool] = (False, False)
    status = 0
    try:
        started = infra_up(settings, log)
        env = os.environ.copy()
        # A new demo person each run: the last one's simulated week ran ahead of the clock.
        prefix = f"demo-{int(time.time())}"
        if demo:
            push, env_extra = _start_push_service(settings, prefix, log)
            children.append(push)
            env.update(env_extra)
        children.append(_spawn("worker", log, env=env))
        children.append(_spawn("web", log, env=env))
        _wait_ready(settings, children, log)
        log(f"ready: open {settings.web_url}  (worker health on "
            f"http://127.0.0.1:{settings.worker_web_port}/ready) — Ctrl-C stops everything")
        if demo:
            children.append(_spawn("demo", log, _demo_args(prefix), may_finish=True))
            log("demo: a simulated person's week at 60x speed; decisions appear as "
                "'decided … for …' lines, and their pushes as 'push …: 201 …' lines")
        status = _watch(children, log)
    except _Stop:
        log("stopping…")
    except InfraError:
        status = 2
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in reversed(children):
            _stop_child(child, log)
        if not keep_infra:
            kafka_started, postgres_started = started
            if postgres_started:
                LocalPostgres.from_settings(settings, log=log).down()
            if kafka_started:
                LocalKafka.from_settings(settings, log=log).down()
        log("stopped")
    return status


def _spawn(name: str, log: Log, args: list[str] | None = None, may_finish: bool = False,
           env: dict[str, str] | None = None, module: str = "oo") -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", module, *(args or [name])], start_new_session=True,
        env=env or os.environ.copy(),
    )
    log(f"{name} started (pid {process.pid})")
    return Child(name, process, may_finish)


def _start_push_service(settings: Settings, prefix: str,
                        log: Log) -> tuple[Child, dict[str, str]]:
    """The local push service, with the demo person subscribed to it.

    Returns the child and the environment the worker needs to push to it
    (trust its test CA, allow its address).
    """
    from oo.pushservice.client import ControlClient

    ca_dir = settings.state_dir / "pushservice"
    port = settings.dev_push_port
    child = _spawn("push service", log, ["--port", str(port), "--ca-dir", str(ca_dir)],
                   module="oo.pushservice")
    client = ControlClient(f"https://127.0.0.1:{port}", ca_dir / "ca.pem")
    try:
        client.wait_ready()
    except Exception as err:  # reported as a start-up failure, the rest is stopped
        _stop_child(child, log)
        raise InfraError(f"the local push service did not start on port {port}: {err}") from err
    _subscribe_demo_person(settings, client, prefix, log)
    return child, {"OO_PUSH_CA_FILE": str(ca_dir / "ca.pem"),
                   "OO_PUSH_EXTRA_HOSTS": f"127.0.0.1:{port}"}


def _subscribe_demo_person(settings: Settings, client: object, prefix: str, log: Log) -> None:
    """Give the demo person an account and one device subscribed to the local push service.

    Earlier demo people are deleted (with their tips and subscriptions).
    """
    import asyncio

    import asyncpg

    from oo.simulator import person_id
    from oo.vapid import generate_keys, load_vapid

    if not settings.vapid_private_key.exists():
        generate_keys(settings.vapid_private_key)
    subscription = client.subscribe(load_vapid(settings.vapid_private_key).public_key)  # type: ignore[attr-defined]
    user_id = person_id(prefix, 0)

    async def seed() -> None:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                await conn.execute("DELETE FROM users WHERE display_name = $1", DEMO_NAME)
                await conn.execute("INSERT INTO users (id, display_name) VALUES ($1, $2)",
                                   user_id, DEMO_NAME)
                await conn.execute(
                    "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, user_agent) "
                    "VALUES ($1, $2, $3, $4, 'oo dev demo device')", user_id,
                    subscription["endpoint"], subscription["keys"]["p256dh"],
                    subscription["keys"]["auth"])
        finally:
            await conn.close()

    asyncio.run(seed())
    log(f"demo person {user_id} subscribed to the local push service")


def _local_zone() -> str:
    """This machine's IANA zone (from TZ or /etc/localtime), else UTC."""
    zone = os.environ.get("TZ", "").lstrip(":")
    if not zone:
        try:
            zone = os.path.realpath("/etc/localtime").split("/zoneinfo/", 1)[1]
        except (IndexError, OSError):
            zone = "UTC"
    return zone or "UTC"


def _wait_ready(settings: Settings, children: list[Child], log: Log) -> None:
    urls = [f"http://127.0.0.1:{settings.worker_web_port}/ready",
            f"http://127.0.0.1:{settings.web_port}/ready"]
    deadline = time.monotonic() + READY_TIMEOUT
    pending = list(urls)
    while pending:
        for child in children:
            if child.process.poll() is not None:
                raise InfraError(f"{child.name} exited with status {child.process.returncode} "
                                 "during start-up (see its output above)")
        pending = [url for url in pending if not _ready(url)]
        if time.monotonic() > deadline:
            raise InfraError(f"not ready after {READY_TIMEOUT:.0f}s: {', '.join(pending)}")
        if pending:
            time.sleep(0.5)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200 and json.load(response).get("status") == "ready"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _watch(children: list[Child], log: Log) -> int:
    watched = list(children)
    while True:
        for child in list(watched):
            code = child.process.poll()
            if code is None:
                continue
            if child.may_finish and code == 0:
                log(f"{child.name} finished")
                watched.remove(child)
                continue
            log(f"{child.name} exited unexpectedly with status {code}; stopping the rest")
            return 1
        time.sleep(0.5)


def _stop_child(child: Child, log: Log) -> None:
    if child.process.poll() is None:
        log(f"stopping {child.name} (pid {child.process.pid})")
        stop_pid(child.process.pid, timeout=30, log=log, name=child.name)
    try:
        child.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(child.process.pid, signal.SIGKILL)
