"""Shared pieces of the local-infrastructure scripts: errors, status, processes.

Each local service (Kafka, PostgreSQL) keeps its files under one state folder
outside git and records the process it started in a pid file, so a second
`up` finds it running and `down` stops exactly what `up` started.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Log = Callable[[str], None]


class InfraError(RuntimeError):
    """A local service could not be provisioned, started or stopped.

    The message is one line a person can act on (what failed and what to do).
    """


@dataclass(frozen=True)
class ServiceStatus:
    """What `status` reports for one local service."""

    name: str
    running: bool
    pid: int | None
    address: str
    detail: str = ""

    def line(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        extra = f" — {self.detail}" if self.detail else ""
        return f"{self.name:<10} {state:<22} {self.address}{extra}"


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in `pid_file` if that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone. But the main thread of a process
    # shows as a zombie as soon as it exits, while the other threads may still be running
    # and holding the process's files and sockets (a SIGKILLed JVM winds down its threads
    # for a while, its listening port still open): alive until every thread has exited.
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc to look at: trust kill(0)
    for thread in threads:
        try:
            state = (thread / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # that thread is gone already
        if state not in ("Z", "X"):
            return True
    return False


def stop_pid(pid: int, *, timeout: float, log: Log, name: str) -> None:
    """SIGTERM `pid`, wait up to `timeout` seconds, then SIGKILL it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    log(f"{name} did not stop within {timeout:.0f}s; killing pid {pid}")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while pid_alive(pid):
        time.sleep(0.05)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `check` until it returns True, or raise InfraError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise InfraError(f"timed out after {timeout:.0f}s waiting for {what}")


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
