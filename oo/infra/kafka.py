"""A local single-node Apache Kafka 4.x broker (KRaft) for development and tests, no Docker.

`install` has Maven copy the broker's jars from Maven Central into the cache
folder once; `up` writes a broker config under the state folder, formats the
storage the first time, starts the JVM detached from the terminal and waits
until a produce/consume round trip succeeds; `down` stops exactly the process
`up` recorded in its pid file.

Layout (state_dir/kafka):  server.properties, cluster-id, data/, logs/server.log
(the broker's log4j2 log), logs/kafka.out (JVM stdout/stderr), kafka.pid.
Layout (cache_dir):        kafka-<version>/libs/*.jar, kafka-<version>/.installed, m2/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import ipaddress
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from oo.infra.common import (
    InfraError,
    Log,
    ServiceStatus,
    pid_alive,
    port_open,
    read_pid,
    stop_pid,
    tail,
)
from oo.settings import Settings

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka-pom.xml"
LOG4J2_CONFIG = HERE / "kafka-log4j2.xml"
HEALTH_TOPIC = "__oo_health"
APT_HINT = "run `apt-get install openjdk-17-jdk-headless maven` (scripts/bootstrap.sh does it)"
# A dev/test broker: a small heap keeps it friendly to a 2-core laptop or CI box;
# the GC flags are the ones Kafka's own start scripts use. Exit on OOM so a
# wedged broker shows up as "stopped" instead of hanging clients.
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
MVN_TIMEOUT = 1800.0

T = TypeVar("T")


@dataclass(frozen=True)
class LocalKafka:
    """The local broker for one Settings: where its jars, config, data and logs live."""

    version: str
    host: str  # literal loopback address the listeners bind and advertise
    port: int
    controller_port: int
    home: Path  # state_dir / "kafka"
    cache_dir: Path
    log: Log = print

    @classmethod
    def from_settings(cls, settings: Settings, log: Log = print) -> LocalKafka:
        """The broker for `settings`; InfraError if OO_KAFKA_BOOTSTRAP is not a loopback address."""
        first = settings.kafka_bootstrap[0]
        host = _loopback_address(first.host)
        if host is None:
            raise InfraError(
                f"OO_KAFKA_BOOTSTRAP points at {first}; `oo infra` only manages a local broker "
                "(use 127.0.0.1:PORT, or run that broker yourself)"
            )
        # The KRaft controller needs a port of its own; the next one up is easy to remember.
        controller = first.port + 1 if first.port < 65535 else first.port - 1
        return cls(settings.kafka_version, host, first.port, controller,
                   settings.state_dir / "kafka", settings.cache_dir, log)

    # -- paths -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return _join(self.host, self.port)

    @property
    def install_dir(self) -> Path:
        return self.cache_dir / f"kafka-{self.version}"

    @property
    def libs_dir(self) -> Path:
        return self.install_dir / "libs"

    @property
    def server_log(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    # -- install -----------------------------------------------------------------------------

    def install(self) -> None:
        """Fetch the Kafka jars into the cache once; a no-op when they are already complete."""
        if self._installed():
            return
        mvn = _require_tool("mvn")
        self.install_dir.mkdir(parents=True, exist_ok=True)
        # Two processes (e.g. `oo dev` and a test run) may install at once: serialize.
        with _file_lock(self.install_dir / ".lock"):
            if self._installed():
                return
            self._fetch_jars(mvn)

    def _fingerprint(self) -> str:
        # Editing the pom (another jar, another log4j) must invalidate old installs.
        return hashlib.sha256(POM.read_bytes() + self.version.encode()).hexdigest()[:16]

    def _installed(self) -> bool:
        marker = self.install_dir / ".installed"
        try:
            ok = marker.read_text().strip() == self._fingerprint()
        except FileNotFoundError:
            return False
        return ok and (self.libs_dir / f"kafka_2.13-{self.version}.jar").is_file()

    def _fetch_jars(self, mvn: str) -> None:
        staging = self.install_dir / "libs.partial"
        for stale in (staging, self.libs_dir):
            shutil.rmtree(stale, ignore_errors=True)
        # Run from a copy of the pom: the package folder may be read-only (site-packages).
        pom = self.install_dir / "pom.xml"
        shutil.copyfile(POM, pom)
        mvn_log = self.install_dir / "mvn.log"
        command = [
            # -U: retry artifacts whose download failed before (Maven caches failures).
            mvn, "-q", "-B", "-U", "-Dstyle.color=never", "-f", str(pom),
            f"-Dmaven.repo.local={self.cache_dir / 'm2'}",  # independent of ~/.m2
            f"-Dkafka.version={self.version}",
            "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
        ]
        self.log(f"kafka: downloading Apache Kafka {self.version} jars from Maven Central into "
                 f"{self.install_dir} (first run only, ~45 MB)…")
        started = time.monotonic()
        with mvn_log.open("wb") as out:
            process = subprocess.Popen(command, cwd=self.install_dir, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT)
            while True:
                try:
                    code = process.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > MVN_TIMEOUT:
                        process.kill()
                        process.wait()
                        raise InfraError(f"mvn took over {MVN_TIMEOUT:.0f}s fetching Kafka jars; "
                                         f"see {mvn_log}") from None
                    self.log(f"kafka: still downloading… {elapsed:.0f}s")
        jar = staging / f"kafka_2.13-{self.version}.jar"
        if code != 0 or not jar.is_file():
            raise InfraError(
                f"mvn could not fetch Apache Kafka {self.version} (exit {code}); is the version "
                f"published as org.apache.kafka:kafka_2.13 and Maven Central reachable? "
                f"From {mvn_log}:\n{_maven_errors(mvn_log)}"
            )
        staging.rename(self.libs_dir)
        (self.install_dir / ".installed").write_text(self._fingerprint() + "\n")
        jars = list(self.libs_dir.glob("*.jar"))
        size = sum(j.stat().st_size for j in jars) / 2**20
        self.log(f"kafka: installed {len(jars)} jars ({size:.0f} MB) "
                 f"in {time.monotonic() - started:.0f}s")

    # -- up / down / status ------------------------------------------------------------------

    def up(self, timeout: float = 120) -> bool:
        """Start the broker and wait until it serves a produce/consume round trip.

        True if this call started it, False if it was already running. Raises InfraError
        when the ports are taken by something else or the broker fails to start.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / ".lock"):  # one `up` at a time starts the JVM
            pid = self._pid()
            if pid is not None:
                if not port_open(self.host, self.port):
                    # Ours but not listening (still starting, or stuck): wait like a fresh start.
                    self.log(f"kafka: pid {pid} is running but not answering yet; waiting")
                # Running means serving: a round trip, not only an open port.
                self._wait_ready(pid, timeout, time.monotonic())
                return False
            for port in (self.port, self.controller_port):
                if port_open(self.host, port):
                    raise InfraError(
                        f"port {port} on {self.host} is in use by a process oO did not start; "
                        f"stop it or point OO_KAFKA_BOOTSTRAP at a free port (the broker needs "
                        f"{self.port} and {self.controller_port})"
                    )
            self.install()
            java = _require_tool("java")
            self._prepare(java)
            started = time.monotonic()
            self.log(f"kafka: starting Apache Kafka {self.version} on {self.address} "
                     f"(log {self.server_log})")
            pid = self._spawn(java)
            try:
                self._wait_ready(pid, timeout, started)
            except BaseException:
                # Never leave a half-started JVM behind (timeout, Ctrl-C, failed check).
                stop_pid(pid, timeout=10, log=self.log, name="kafka")
                self.pid_file.unlink(missing_ok=True)
                raise
            self.log(f"kafka: ready on {self.address} in {time.monotonic() - started:.1f}s "
                     f"(pid {pid})")
            return True

    def down(self, timeout: float = 30) -> bool:
        """Stop the broker `up` started; True if one was running, False otherwise."""
        self.home.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.home / ".lock"):
            pid = self._pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                return False
            self.log(f"kafka: stopping pid {pid}")
            # SIGTERM lets Kafka flush and close its logs cleanly (faster next start).
            stop_pid(pid, timeout=timeout, log=self.log, name="kafka")
            self.pid_file.unlink(missing_ok=True)
            return True

    def status(self) -> ServiceStatus:
        """Whether our broker runs, and whether it (or a stranger) answers on the port."""
        pid = self._pid()
        listening = port_open(self.host, self.port)
        if pid is not None:
            detail = f"Kafka {self.version}" + ("" if listening else ", not answering yet")
        elif listening:
            detail = "port in use by a process oO did not start"
        else:
            detail = f"Kafka {self.version}, data in {self.home}"
        return ServiceStatus("kafka", pid is not None, pid, self.address, detail)

    # -- internals ---------------------------------------------------------------------------

    def _pid(self) -> int | None:
        """The recorded pid if it is alive and still our broker (pids get reused after a reboot)."""
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            if Path("/proc/self").exists():
                return None  # /proc is there and the process is not: it is gone
            return pid if pid_alive(pid) else None  # no /proc to check against
        return pid if str(self.home / "server.properties").encode() in cmdline else None

    def _prepare(self, java: str) -> None:
        """Write the config every time (ports may change) and format storage once."""
        data = self.home / "data"
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(self._config(data))
        if (data / "meta.properties").is_file():
            return
        id_file = self.home / "cluster-id"
        cluster_id = id_file.read_text().strip() if id_file.is_file() else _new_cluster_id()
        id_file.write_text(cluster_id + "\n")
        self.log(f"kafka: formatting storage in {data} (cluster id {cluster_id})")
        result = subprocess.run(
            [java, *self._java_options(), "kafka.tools.StorageTool", "format",
             "--config", str(config), "--cluster-id", cluster_id, "--ignore-formatted"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise InfraError(f"formatting Kafka storage in {data} failed (exit "
                             f"{result.returncode}):\n{(result.stdout + result.stderr).strip()}")

    def _config(self, data: Path) -> str:
        listener, controller = _join(self.host, self.port), _join(self.host, self.controller_port)
        return f"""\
# Written by oo/infra/kafka.py on every `up`; edits here are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{controller}
listeners=PLAINTEXT://{listener},CONTROLLER://{controller}
advertised.listeners=PLAINTEXT://{listener}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
# Fewer partitions than the default 50: a faster first group/transaction and restart.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start and stop consumers constantly: rebalance at once.
group.initial.rebalance.delay.ms=0
# oO creates every topic explicitly with its partition count; a typo must fail.
auto.create.topics.enable=false
num.partitions=1
"""

    def _java_options(self) -> list[str]:
        return [
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", str(self.libs_dir / "*"),
        ]

    def _spawn(self, java: str) -> int:
        """Start the JVM detached and record its pid.

        A short-lived `sh` starts it in the background and prints its pid, so the broker is
        not our child: it outlives this process without becoming a zombie, and no Popen
        object is left to warn "subprocess is still running" (an error under pytest's
        filterwarnings=error). start_new_session: Ctrl-C in the terminal that ran `oo dev`
        must not reach the broker; `down` stops it deliberately.
        """
        out = self.home / "logs" / "kafka.out"  # truncated by `>`: only this run's JVM output
        command = [java, *self._java_options(), "kafka.Kafka", str(self.home / "server.properties")]
        launcher = subprocess.run(
            ["sh", "-c", '"$@" </dev/null >"$0" 2>&1 & echo $!', str(out), *command],
            cwd=self.home, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
            start_new_session=True, check=False,
        )
        try:
            pid = int(launcher.stdout.strip())
        except ValueError:
            raise InfraError(f"could not start java: {launcher.stderr.strip()}") from None
        self.pid_file.write_text(f"{pid}\n")
        return pid

    def _wait_ready(self, pid: int, timeout: float, started: float) -> None:
        deadline = started + timeout
        next_note = time.monotonic() + 5
        problem = "port not open yet"
        while True:
            if not pid_alive(pid):
                raise InfraError(f"Kafka (pid {pid}) exited during startup{self._hint()}; "
                                 f"last lines of its logs:\n{self._log_tail()}")
            if port_open(self.host, self.port):
                remaining = max(1.0, min(15.0, deadline - time.monotonic()))
                try:
                    with _quiet("aiokafka"):
                        _run(_round_trip(self.address, remaining))
                    return
                except Exception as err:  # noqa: BLE001 — not ready yet: any failure means retry
                    problem = f"{type(err).__name__}: {err}".strip().rstrip(":")
            now = time.monotonic()
            if now >= deadline:
                raise InfraError(f"Kafka on {self.address} did not serve a produce/consume round "
                                 f"trip within {timeout:.0f}s ({problem}); last lines of its "
                                 f"logs:\n{self._log_tail()}")
            if now >= next_note:
                self.log(f"kafka: waiting for the broker… {now - started:.0f}s ({problem})")
                next_note = now + 5
            time.sleep(0.25)

    def _log_tail(self) -> str:
        out = self.home / "logs" / "kafka.out"
        parts = [tail(self.server_log)]
        if out.is_file() and out.stat().st_size:
            parts.append(f"--- {out}:\n{tail(out)}")
        return "\n".join(parts)

    def _hint(self) -> str:
        text = tail(self.home / "logs" / "kafka.out", 50)
        if "UnsupportedClassVersionError" in text:
            return " (Kafka 4.x needs Java 17 or newer)"
        return ""


async def _round_trip(bootstrap: str, timeout: float) -> None:
    """Create the health topic if absent, produce a random value and read it back."""
    # Imported here: only `up` needs the client, and the CLI should start fast.
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    common: dict[str, Any] = {"bootstrap_servers": bootstrap, "client_id": "oo-infra-health",
                              "request_timeout_ms": int(timeout * 1000)}
    async with asyncio.timeout(timeout):
        admin = AIOKafkaAdminClient(**common)
        try:
            await admin.start()
            if HEALTH_TOPIC not in await admin.list_topics():
                response = await admin.create_topics(
                    [NewTopic(HEALTH_TOPIC, 1, 1, topic_configs={"retention.ms": "3600000"})])
                # create_topics reports per-topic errors in the response instead of raising;
                # 36 = TOPIC_ALREADY_EXISTS (a concurrent `up` won the race).
                for name, code, *rest in response.topic_errors:
                    if code not in (0, 36):
                        raise InfraError(f"creating {name} failed with error code {code} {rest}")
        finally:
            await admin.close()
        producer = AIOKafkaProducer(**common, acks="all")
        try:
            await producer.start()
            value = uuid.uuid4().hex.encode()
            sent = await producer.send_and_wait(HEALTH_TOPIC, value, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(**common, group_id=None, enable_auto_commit=False)
        try:
            await consumer.start()
            partition = TopicPartition(HEALTH_TOPIC, 0)
            consumer.assign([partition])
            consumer.seek(partition, sent.offset)
            record = await consumer.getone()
            if record.value != value:
                raise InfraError(f"{HEALTH_TOPIC} returned {record.value!r}, expected {value!r}")
        finally:
            await consumer.stop()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from code that already runs an event loop (async test fixtures)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as err:  # noqa: BLE001 — re-raised in the caller's thread
            failure.append(err)

    thread = threading.Thread(target=target, name="oo-kafka-health")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Mute a logger while probing a broker that is still starting.

    Its "unable to connect" and "not leader, retrying" lines are expected then and would
    reach the terminal through logging's last-resort handler; failures are reported by
    `_wait_ready` instead.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, released when the block exits or the process dies."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _maven_errors(mvn_log: Path) -> str:
    """The lines of a Maven log that say what failed, without colour codes or boilerplate."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", tail(mvn_log, 40))
    errors = [line for line in text.splitlines()
              if line.startswith("[ERROR]") and ("Failed to execute" in line or "Could not" in line)]
    return "\n".join(errors[:3]) or text


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InfraError(f"`{name}` is not installed; {APT_HINT}")
    return path


def _loopback_address(host: str) -> str | None:
    """A literal loopback address for `host` (preferring IPv4), or None if it is not local."""
    try:
        return str(ipaddress.ip_address(host)) if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        pass  # a name such as "localhost": every address it resolves to must be loopback
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses or not all(a.is_loopback for a in addresses):
        return None
    return str(min(addresses, key=lambda a: a.version))


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Same as `kafka-storage random-uuid`, without paying a JVM start for it. Kafka never
    hands out ids starting with '-', which a command line would take for an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
