"""The web benchmark's load generator: one process of its own, `python -m bench.webload`.

It reads one job (JSON) on stdin and prints one result (JSON) on stdout, so the
client's work never runs on the server's event loop (bench/web.py starts it for
each phase and measures the server from outside).

HTTP/1.1 over keep-alive connections, on a bare `asyncio.Protocol`: requests
are prebuilt bytes, responses are framed by `Content-Length` (every answer of
`oo web` has one). Far cheaper per request than an aiohttp `ClientSession`, so
on two cores the client takes as little as possible of the machine the server
is measured on; its own CPU time is reported with every phase.

Two modes:

- **closed** — `connections` workers, each sending its next request when the
  previous answer is in (the maximum throughput at that concurrency). A job is
  a list of *scripts*: each a short sequence of requests sent in order on one
  connection (e.g. `seen`, then `done` for the same tip). With `cycle`, the
  scripts repeat until `duration` or `max_requests`.
- **open** — a constant `rate` for `duration` seconds. Sends follow the clock,
  never the answers: request *i* is due at start + i/rate and goes out on an
  idle connection (a new one is opened when none is idle, up to
  `max_connections`). Latency is counted from the planned send time, so a
  client that falls behind makes the figures worse, not better; a send that
  leaves more than `late_ms` after its planned time is counted as late.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

DRAIN_S = 20.0  # an open-loop request not answered this long after the last send never was


# --- pure helpers (tests/unit/test_bench_web.py) --------------------------------------------


def build_request(method: str, path: str, *, host: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    """One HTTP/1.1 request on a keep-alive connection, as bytes ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH", "DELETE"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ProtocolError(ValueError):
    """The server's answer is not an HTTP/1.1 response this client can frame."""


def parse_response(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """(status, length in bytes of the whole response) once `buffer` holds a complete one.

    None while the head or the body is still incomplete. Responses must carry
    Content-Length (chunked bodies are refused: `oo web` sends none to this client).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    if not head.startswith(b"http/1.") or len(head) < 12:
        raise ProtocolError(f"not an HTTP/1.x status line: {bytes(buffer[:40])!r}")
    status = int(head[9:12])
    length = 0
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:stop if stop >= 0 else None].strip())
    elif b"\r\ntransfer-encoding:" in head:
        raise ProtocolError("chunked responses are not supported by the load generator")
    total = end + 4 + length
    return (status, total) if len(buffer) >= total else None


def due_count(elapsed_s: float, rate: float, total: int) -> int:
    """How many of `total` sends planned at `rate`/s, the first at 0, are due `elapsed_s` in."""
    if elapsed_s < 0:
        return 0
    return min(total, math.floor(elapsed_s * rate) + 1)


def summarize(latencies_ms: Sequence[float], expected: int | None = None) -> dict[str, float]:
    """p50/p90/p99/max (nearest rank); with `expected`, missing answers count as infinitely late."""
    values = sorted(latencies_ms)
    if expected is not None:
        if len(values) > expected:
            raise ValueError(f"{len(values)} latencies for {expected} requests")
        values += [math.inf] * (expected - len(values))
    if not values:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan}

    def rank(q: float) -> float:
        return values[min(len(values), max(1, math.ceil(q / 100 * len(values)))) - 1]

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": values[-1]}


def bursts(times_s: Sequence[float], gap_s: float) -> list[list[float]]:
    """Group event times into [start, end, count] runs whose neighbours are ≤ `gap_s` apart.

    Slow requests in a few tight bursts point at stalls (a pause of the server
    or of the machine); spread evenly, at a server that is simply too slow.
    """
    out: list[list[float]] = []
    for t in sorted(times_s):
        if out and t - out[-1][1] <= gap_s:
            out[-1][1] = t
            out[-1][2] += 1
        else:
            out.append([t, t, 1])
    return out


# --- the client ---------------------------------------------------------------------------


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = parse_response(self.buffer)
        except ProtocolError as err:
            waiter.set_exception(err)
            return
        if parsed is not None:
            status, total = parsed
            del self.buffer[:total]
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes) -> int:
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, host, port)
    return protocol


class Tally:
    """What came back: statuses, connection errors, latencies (ms)."""

    def __init__(self, expect: Sequence[int]) -> None:
        self.expect = frozenset(expect)
        self.statuses: Counter[int] = Counter()
        self.errors = 0
        self.latencies_ms: list[float] = []

    def answered(self, status: int, latency_s: float) -> None:
        self.statuses[status] += 1
        self.latencies_ms.append(latency_s * 1000)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in self.expect)

    def result(self, elapsed_s: float, cpu_s: float, expected: int | None = None) -> dict[str, Any]:
        answered = sum(self.statuses.values())
        return {
            "requests": answered + self.errors, "answered": answered, "ok": self.ok,
            "failed": answered + self.errors - self.ok, "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed_s": elapsed_s, "rps": self.ok / elapsed_s if elapsed_s > 0 else 0.0,
            "latency_ms": summarize(self.latencies_ms, expected), "client_cpu_s": cpu_s,
        }


async def closed_loop(job: dict[str, Any]) -> dict[str, Any]:
    host, port = job["host"], job["port"]
    scripts = [[r.encode("latin-1") for r in script] for script in job["scripts"]]
    cycle, duration = bool(job.get("cycle", True)), float(job.get("duration", 0))
    max_requests = int(job.get("max_requests") or 0) or math.inf
    tally = Tally(job.get("expect", [200]))
    conns = [await connect(host, port) for _ in range(int(job["connections"]))]
    position, started = 0, 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + duration if duration > 0 else math.inf

    async def worker(conn: Connection) -> None:
        nonlocal position, started
        while time.perf_counter() < deadline and started < max_requests:
            if position >= len(scripts) and not cycle:
                return
            script = scripts[position % len(scripts)]
            position += 1
            for raw in script:
                started += 1
                sent = time.perf_counter()
                try:
                    status = await conn.request(raw)
                except (ConnectionError, ProtocolError, OSError):
                    tally.errors += 1
                    conn.close()
                    conn = await connect(host, port)
                    break  # the rest of this script depends on what was lost
                tally.answered(status, time.perf_counter() - sent)
        conn.close()

    await asyncio.gather(*(worker(c) for c in conns))
    return tally.result(time.perf_counter() - t0, time.process_time() - cpu0)


async def open_loop(job: dict[str, Any]) -> dict[str, Any]:
    host, port = job["host"], job["port"]
    requests = [script[0].encode("latin-1") for script in job["scripts"]]
    rate, duration = float(job["rate"]), float(job["duration"])
    total = max(1, round(rate * duration))
    late_s = float(job.get("late_ms", 5.0)) / 1000
    max_connections = int(job.get("max_connections", 512))
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(int(job.get("warm_connections", 32))):
        idle.put_nowait(await connect(host, port))
    opened = idle.qsize()
    tally = Tally(job.get("expect", [200]))
    late, worst_late = 0, 0.0
    slow_ms = float(job.get("slow_ms", 20.0))
    slow: list[list[float]] = []  # [planned send (s from start), latency ms] of the slow ones

    async def one(i: int, planned: float) -> None:
        nonlocal opened, late, worst_late
        conn: Connection | None = None
        try:
            try:
                conn = idle.get_nowait()
            except asyncio.QueueEmpty:
                if opened < max_connections:
                    opened += 1
                    conn = await connect(host, port)
                else:
                    conn = await idle.get()
            behind = loop.time() - planned
            worst_late = max(worst_late, behind)
            late += behind > late_s
            status = await conn.request(requests[i % len(requests)])
        except (ConnectionError, ProtocolError, OSError):
            tally.errors += 1
            if conn is not None:
                conn.close()
            opened -= 1
            return
        latency = loop.time() - planned
        tally.answered(status, latency)
        if latency * 1000 > slow_ms and len(slow) < 2000:
            slow.append([round(planned - start, 4), round(latency * 1000, 2)])
        idle.put_nowait(conn)

    tasks: list[asyncio.Task[None]] = []
    cpu0 = time.process_time()
    start = loop.time() + 0.01
    launched = 0
    while launched < total:
        due = due_count(loop.time() - start, rate, total)
        for i in range(launched, due):
            tasks.append(loop.create_task(one(i, start + i / rate)))
        launched = due
        if launched < total:
            await asyncio.sleep(max(0.0, start + launched / rate - loop.time()))
    last_send = loop.time()
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_S) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    elapsed = loop.time() - start
    while not idle.empty():
        idle.get_nowait().close()
    result = tally.result(elapsed, time.process_time() - cpu0, expected=total)
    result.update(planned=total, rate=rate, send_window_s=last_send - start, late=late,
                  late_ms=late_s * 1000, worst_late_ms=worst_late * 1000, unanswered=len(pending),
                  connections_opened=opened, slow_ms=slow_ms, slow=sorted(slow),
                  slow_bursts=bursts([s[0] for s in slow], gap_s=0.1))
    result["failed"] += len(pending)
    return result


def finite(value: Any) -> Any:
    """JSON has no infinity: an unanswered request's latency is written as null."""
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def main() -> int:
    job = json.loads(sys.stdin.read())
    runner = open_loop if job["mode"] == "open" else closed_loop
    result = asyncio.run(runner(job))
    print(json.dumps(finite(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
