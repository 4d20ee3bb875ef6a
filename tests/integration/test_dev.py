"""`oo dev` brings up everything, prints the URL, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import getpass
import os
import re
import signal
import time
from pathlib import Path

import pytest

from oo.infra.common import pid_alive, port_open
from tests.conftest import SLOT, oo_test_environ, port
from tests.helpers import http_get, oo_process, stop_process

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Its own ports and state, so `oo dev` starts (and must stop) its own Kafka and PostgreSQL.
DEV_ENV = {
    "OO_KAFKA_BOOTSTRAP": f"127.0.0.1:{port(29192)}",
    "OO_DATABASE_URL": f"postgresql://oo@127.0.0.1:{port(25532)}/oo",
    "OO_STATE_DIR": f"/var/tmp/oo-test-dev-{getpass.getuser()}{'-' + str(SLOT) if SLOT else ''}",
    "OO_WEB_PORT": str(port(28180)),
    "OO_WORKER_WEB_PORT": str(port(26166)),
    "OO_TABLE_STORE": "rocksdb://",  # the default of `make dev`
    "OO_DEV_PUSH_PORT": str(port(28643)),
}


def test_dev_runs_the_stack_and_ctrl_c_stops_all_of_it():
    env = {**oo_test_environ(), **DEV_ENV, "OO_ENV": "dev"}
    log = ARTIFACTS / "oo-dev.log"
    process = oo_process(["dev"], env, log)
    try:
        deadline = time.monotonic() + 240
        while "ready: open" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "oo dev never printed the URL"
            time.sleep(0.5)
        while "demo started" not in log.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        output = log.read_text(errors="replace")
        assert f"ready: open http://127.0.0.1:{port(28180)}/" in output
        status, _ = http_get(f"http://127.0.0.1:{port(28180)}/ready")
        assert status == 200
        assert http_get(f"http://127.0.0.1:{port(26166)}/ready")[0] == 200
        pids = [int(p) for p in re.findall(r"started \(pid (\d+)\)", output)]
        assert len(pids) == 4  # push service, worker, web, and the demo simulation
        pids += _infra_pids(Path(DEV_ENV["OO_STATE_DIR"]))

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert process.wait(timeout=120) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        stop_process(process, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if pid_alive(p)], "processes left behind"
    for number in (29192, 25532, 28180, 26166, 28643):
        assert not port_open("127.0.0.1", port(number)), f"port {port(number)} still open"


def _infra_pids(state: Path) -> list[int]:
    pids = []
    for pid_file in list(state.rglob("*.pid")) + list(state.rglob("postmaster.pid")):
        try:
            pids.append(int(pid_file.read_text().split()[0]))
        except (ValueError, IndexError, OSError):
            pass
    assert len(pids) >= 2, f"expected Kafka and PostgreSQL pid files under {state}"
    return pids
