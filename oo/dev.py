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


DEMO = ["simulate", "--users", "1", "--days", "7", "--speed", "60", "--prefix", "demo",
        "--seed", "7"]


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
        children.append(_spawn("worker", log))
        children.append(_spawn("web", log))
        _wait_ready(settings, children, log)
        log(f"ready: open {settings.web_url}  (worker health on "
            f"http://127.0.0.1:{settings.worker_web_port}/ready) — Ctrl-C stops everything")
        if demo:
            children.append(_spawn("demo", log, [*DEMO, "--time-zone", _local_zone()],
                                   may_finish=True))
            log("demo: a simulated person's week at 60x speed; decisions appear as "
                "'decided … for …' lines")
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


def _spawn(name: str, log: Log, args: list[str] | None = None, may_finish: bool = False) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", "oo", *(args or [name])], start_new_session=True,
        env=os.environ.copy(),
    )
    log(f"{name} started (pid {process.pid})")
    return Child(name, process, may_finish)


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
