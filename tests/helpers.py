"""Helpers shared by integration tests: Kafka I/O and subprocesses of `oo`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    """Send (key, value) pairs in order and wait until the broker has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def consume_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list], bool],
    *,
    keep: Callable[[object], bool] = lambda record: True,
    timeout: float = 60.0,
    from_end: bool = False,
) -> list:
    """Read `topic` (all partitions, no group) until `done(kept records)` or the timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic, timeout)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        if from_end:
            await consumer.seek_to_end(*assignment)
        else:
            await consumer.seek_to_beginning(*assignment)
        kept: list = []
        deadline = time.monotonic() + timeout
        while not done(kept):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}: kept {len(kept)} records")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                kept.extend(r for r in records if keep(r))
        return kept
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float) -> set[int]:
    """The topic's partitions; a topic the worker is still creating is waited for."""
    deadline = time.monotonic() + timeout
    while True:
        found = set((await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or ())
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} does not exist")
        await asyncio.sleep(0.3)


def oo_process(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m oo COMMAND...` in its own session, output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        # Unbuffered: a SIGKILLed process's last lines are in its log too.
        return subprocess.Popen([sys.executable, "-m", "oo", *command],
                                env={**env, "PYTHONUNBUFFERED": "1"}, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http(url: str, status: int = 200, timeout: float = 90.0,
              process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> bytes:
    """Poll `url` until it answers `status`; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"process exited with {process.returncode}:\n{output}")
        try:
            code, body = http_get(url)
            if code == status:
                return body
            last = code
        except OSError as err:
            last = err
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


def run(coro):
    return asyncio.run(coro)


async def read_to_end(bootstrap: str, topic: str, keep: Callable[[object], bool] = lambda r: True,
                      timeout: float = 30.0) -> list:
    """Every kept record of `topic` up to its end offsets as of now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assignment = [TopicPartition(topic, p)
                      for p in sorted(await _partitions(consumer, topic, timeout))]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        ends = await consumer.end_offsets(assignment)
        kept: list = []
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic} to its end")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                kept.extend(r for r in records if r.offset < ends[tp] and keep(r))
        return kept
    finally:
        await consumer.stop()

