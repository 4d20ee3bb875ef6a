import subprocess
import sys
import time
from pathlib import Path

import pytest

from oo.infra.common import pid_alive

pytestmark = [pytest.mark.unit,
              pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")]

# The main thread exits (pthread_exit) while another thread keeps running: the process
# looks like a zombie in /proc/PID/stat, as a SIGKILLed JVM does while its threads wind down.
MAIN_THREAD_EXITS = ("import ctypes, threading, time; "
                     "threading.Thread(target=time.sleep, args=(60,)).start(); "
                     "ctypes.CDLL(None).pthread_exit(None)")


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_process_is_alive_while_any_of_its_threads_runs() -> None:
    process = subprocess.Popen([sys.executable, "-c", MAIN_THREAD_EXITS])
    try:
        deadline = time.monotonic() + 10
        while state(process.pid) != "Z":
            assert time.monotonic() < deadline, "the main thread did not exit"
            time.sleep(0.02)
        assert pid_alive(process.pid), "its main thread is a zombie, but another thread runs"
    finally:
        process.kill()
        process.wait()
    assert not pid_alive(process.pid)


def test_a_zombie_is_not_alive() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while state(process.pid) != "Z":  # exited, not reaped yet
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not pid_alive(process.pid)
    process.wait()
