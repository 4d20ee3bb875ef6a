"""Shared pieces of the benchmarks: settings, local infrastructure, the worker process, stats.

The benchmark has its own settings (ports, state folder), so it never touches
a running `oo dev` or a test session: Kafka on 127.0.0.1:39092, PostgreSQL on
127.0.0.1:35432, state in /var/tmp/oo-bench-<user>. What it starts, it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from oo.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTED = time.monotonic()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


BENCH_ENV = {
    "OO_ENV": "test",
    "OO_KAFKA_BOOTSTRAP": "127.0.0.1:39092",
    "OO_DATABASE_URL": "postgresql://oo@127.0.0.1:35432/oo",
    "OO_STATE_DIR": f"/var/tmp/oo-bench-{_user()}",
    "OO_WEB_PORT": "38080",
    "OO_WORKER_WEB_PORT": "36066",
    "OO_TABLE_STORE": "rocksdb://",
    "OO_TOPIC_PARTITIONS": "4",
    "OO_POLICY": "random",
    "OO_LOG_LEVEL": "info",
}


def say(message: str) -> None:
    """One progress line, prefixed with the time since the benchmark started."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def bench_environ(**extra: str) -> dict[str, str]:
    """The environment of the benchmark and of the processes it starts.

    OO_* variables of the caller are dropped (the benchmark never uses `oo dev`'s
    ports), except where the jars are cached and which Kafka runs.
    """
    keep = {k: v for k, v in os.environ.items() if not k.startswith("OO_")}
    for name in ("OO_CACHE_DIR", "OO_KAFKA_VERSION"):
        if name in os.environ:
            keep[name] = os.environ[name]
    return {**keep, **BENCH_ENV, **extra}


def bench_settings(**extra: str) -> Settings:
    return Settings.from_env(bench_environ(**extra))


# --- stats ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: a value that was actually observed."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- processes -----------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) used so far by process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" the fields start at 3 (state): utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def parse_counters(text: str) -> dict[str, int]:
    """Prometheus text → {counter name: sum over its labels}."""
    sums: dict[str, int] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        sums[name] = sums.get(name, 0) + int(float(value))
    return sums


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why (and where the logs are)."""


@dataclass
class WorkerProcess:
    """One `oo worker` with a fresh app id: a new consumer group and empty tables.

    `role` is `oo worker --role` (a "notify" worker's group is `<app_id>-notify`);
    `web_port` overrides OO_WORKER_WEB_PORT, for a second worker beside the first.
    """

    settings: Settings
    log_dir: Path
    faust_overrides: dict[str, object] = field(default_factory=dict)
    module: str = "oo"  # `python -m oo worker`; "bench.floor" for the Faust floor
    app_id: str = field(default_factory=lambda: f"oo-bench-{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None
    role: str = "all"
    web_port: int | None = None

    @property
    def port(self) -> int:
        return self.web_port or self.settings.worker_web_port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        role = "" if self.role == "all" else f"-{self.role}"
        return self.log_dir / f"worker-{self.app_id}{role}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 120) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = bench_environ(OO_APP_ID=self.app_id, OO_WORKER_WEB_PORT=str(self.port))
        role = ["--role", self.role] if self.module == "oo" else []
        if self.faust_overrides:
            # Same code path, with Faust settings overridden (bench/worker.py).
            env["OO_BENCH_FAUST"] = json.dumps(self.faust_overrides)
            command = [sys.executable, "-m", "bench.worker", self.module, *role]
        elif self.module == "oo":
            command = [sys.executable, "-m", "oo", "worker", *role]
        else:
            command = [sys.executable, "-m", self.module]
        with self.log.open("ab") as out:  # a restart appends
            self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                code, _ = http_get(f"{self.base}/ready", timeout=5)
                if code == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the worker was not ready within {timeout:.0f}s; log {self.log}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            text = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise BenchError(f"the worker exited with {self.process.returncode}; log {self.log}:"
                             f"\n{text}")

    def counters(self) -> dict[str, int]:
        code, body = http_get(f"{self.base}/metrics", timeout=10)
        if code != 200:
            raise BenchError(f"{self.base}/metrics answered {code}")
        return parse_counters(body.decode())

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def stop(self, timeout: float = 30) -> None:
        stop_group(self.process, timeout)

    def cleanup(self) -> None:
        """Remove the worker's RocksDB folders (its changelog topics go with the topic reset)."""
        faust_dir = self.settings.state_dir / "faust"
        port, app_id = self.port, self.app_id + ("-notify" if self.role == "notify" else "")
        for path in (faust_dir / f"{app_id}-worker-{port}", faust_dir / f"worker-{port}"):
            shutil.rmtree(path, ignore_errors=True)


# --- infrastructure ------------------------------------------------------------------


@contextlib.contextmanager
def local_infra(settings: Settings, keep: bool, log: Callable[[str], None] = say) -> Iterator[int | None]:
    """Kafka and PostgreSQL for the benchmark; yields the broker's pid.

    Stops, at the end, what this call started (unless `keep`).
    """
    from oo.infra.kafka import LocalKafka
    from oo.infra.postgres import LocalPostgres

    kafka = LocalKafka.from_settings(settings, log=lambda m: log(m))
    postgres = LocalPostgres.from_settings(settings, log=lambda m: log(m))
    started: list[object] = []
    try:
        if kafka.up():
            started.append(kafka)
        if postgres.up():
            started.append(postgres)
        from oo.migrate import migrate

        # The notify agent records every decision in PostgreSQL: the schema must be there.
        asyncio.run(migrate(settings.database_url, log=lambda _: None))
        pid_text = kafka.pid_file.read_text().split() if kafka.pid_file.exists() else []
        yield int(pid_text[0]) if pid_text else None
    finally:
        if keep:
            if started:
                log("leaving Kafka and PostgreSQL running (--keep-infra)")
        else:
            for service in reversed(started):
                with contextlib.suppress(Exception):
                    service.down()  # type: ignore[attr-defined]


async def reset_topics(bootstrap: str, partitions: int, *, only: Sequence[str] | None = None,
                       prefixes: Sequence[str] = ()) -> None:
    """Delete oO's topics (or `only` those, plus topics starting with `prefixes`) and recreate.

    A benchmark run must start from known topic contents: Faust reads from the
    earliest offset, so anything left from an earlier run would be processed again.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    from topics.admin import ensure_topics
    from topics.catalog import ALL_TOPICS

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="oo-bench")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = set(only) if only is not None else {s.name for s in ALL_TOPICS}
        doomed = sorted(t for t in existing if t in wanted or t.startswith(tuple(prefixes)))
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=30000)
            deadline = time.monotonic() + 60
            while set(await admin.list_topics()) & set(doomed):
                if time.monotonic() > deadline:
                    raise BenchError(f"topics {doomed} were not deleted within 60s")
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    specs = [s for s in ALL_TOPICS if only is None or s.name in only]
    for attempt in range(50):
        try:
            await ensure_topics(bootstrap, partitions=partitions, replication=1, specs=specs,
                                log=lambda _: None)
            await _wait_topics(bootstrap, [s.name for s in specs], partitions)
            return
        except Exception:  # a deletion still settling: retry a while
            if attempt == 49:
                raise
            await asyncio.sleep(0.3)


async def _wait_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            meta = await consumer._client.fetch_all_metadata()
            if all(len(meta.partitions_for_topic(n) or ()) == partitions
                   and all((meta.leader_for_partition(TopicPartition(n, p)) or -1) >= 0
                           for p in range(partitions)) for n in names):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"topics {list(names)} did not appear")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    info = {"cpus": str(os.cpu_count()), "python": sys.version.split()[0]}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(Exception):
        import aiokafka
        import faust

        info["faust"] = faust.__version__
        info["aiokafka"] = aiokafka.__version__
    return info


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` above 0, or a clear usage error."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be more than 0")
        return value

    return parse


def stop_group(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM the process group of `process`, then SIGKILL it after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
