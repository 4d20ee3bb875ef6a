"""Fault tests: their own Kafka broker (so it can be killed), real workers, injected crashes.

The broker here is not the session's: tests stop, kill and restart it. Each
fault test produces its own people (fresh ids) and reads its own results.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oo.infra.kafka import LocalKafka
from oo.settings import Settings
from tests.conftest import SLOT, oo_test_environ, port
from tests.helpers import http_get
from tests.integration.conftest import Worker
from topics.admin import ensure_topics

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults"


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalKafka]:
    """A broker of this module's own, started empty; stopped at the end."""
    suffix = f"-{SLOT}" if SLOT else ""
    own = Settings.from_env({
        **oo_test_environ(), "OO_KAFKA_BOOTSTRAP": f"127.0.0.1:{port(29592)}",
        "OO_STATE_DIR": f"/var/tmp/oo-test-faults-{getpass.getuser()}{suffix}"})
    kafka = LocalKafka.from_settings(own, log=lambda _: None)
    kafka.down()
    shutil.rmtree(own.state_dir / "kafka" / "data", ignore_errors=True)
    kafka.up()
    try:
        yield kafka
    finally:
        kafka.down()


@pytest.fixture
async def topics(broker: LocalKafka, settings: Settings, postgres: str) -> str:
    await ensure_topics(broker.address, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    return broker.address


class FaultWorker(Worker):
    """An `oo worker` on the fault broker, with a web port of its own (several run at once)."""

    def __init__(self, settings: Settings, app_id: str, bootstrap: str, web_port: int,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(settings, app_id, env={
            "OO_KAFKA_BOOTSTRAP": bootstrap, "OO_WORKER_WEB_PORT": str(web_port), **(env or {})})
        self.base = f"http://127.0.0.1:{web_port}"
        self.last_metrics: dict[str, int] = {}

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def poll_metric(self, name: str) -> int:
        """The counter now, remembered so it can still be reported after a SIGKILL."""
        try:
            value = self.metric(name)
        except (OSError, AssertionError):
            return self.last_metrics.get(name, 0)
        self.last_metrics[name] = value
        return value

    def alive(self) -> bool:
        try:
            return http_get(f"{self.base}/ready", timeout=2)[0] == 200
        except OSError:
            return False


@pytest.fixture
def workers(settings: Settings, topics: str,
            tmp_path: Path) -> Iterator[Callable[[int], FaultWorker]]:
    """Make workers of one app id (one consumer group): `make(n)` gives the n-th.

    They keep their tables in RocksDB, as production does (each worker its own
    folder, kept across its restarts), not in the memory store of the other tests.
    """
    app_id = f"oo-fault-{uuid.uuid4().hex[:8]}"
    made: list[FaultWorker] = []

    def make(index: int) -> FaultWorker:
        worker = FaultWorker(settings, app_id, topics, port(26300) + index, env={
            "OO_TABLE_STORE": "rocksdb://", "OO_STATE_DIR": str(tmp_path / "state")})
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


def wait(check, timeout: float, what: str, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)
