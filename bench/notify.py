"""The notifier benchmark: Web Push delivery against the local push service, over HTTPS.

In one run, side by side (docs/benchmarks.md, "Notifier"):

1. **naive** — `pywebpush.webpush()` called one push at a time, as pywebpush's
   README shows: synchronous `requests`, a new connection and TLS handshake and
   a new VAPID signature (key read from its PEM file) on every call;
2. **notify path** — the production `PushSender`, built by `agents.notify.Notifier`
   exactly as the worker builds it (shared keep-alive aiohttp session with the
   guarded connector and TLS context, cached VAPID, bounded concurrency), each
   push one decision (`plan_tip` + `send_many`, as `Notifier.deliver` sends a
   decision), `window` decisions in flight: pushes/s, latency, CPU per push;
3. **ceiling** — bare aiohttp POSTs of bodies encrypted beforehand, same
   headers, same window: the most any client can get through this push
   service on this machine (the push service, one Python process that checks
   VAPID and decrypts every push, is then the bottleneck);
4. **open loop** — the notify path at a constant rate (default 1,000 pushes/s):
   sends follow the clock, not the acks; latency is counted from each push's
   planned send time;
5. **in process** — CPU µs per push of the encryption alone (pywebpush's
   `WebPusher.encode`, aes128gcm: the most one core could encrypt), and of
   VAPID signing per call and cached.

The push service (`python -m oo.pushservice`, its own test CA) runs as a
separate process on 127.0.0.1:38443 and is started afresh, with new simulated
devices, for each measured phase: it keeps every message it accepts and scans
them all on each push, so it slows down as messages pile up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.webload import finite  # the one JSON-safe writer, stdlib only
from bench.common import (
    ROOT,
    BenchError,
    bench_settings,
    machine,
    median,
    percentile,
    process_cpu,
    say,
    stop_group,
)
from oo.settings import Settings

PUSH_PORT = 38443
PUSH_BASE = f"https://127.0.0.1:{PUSH_PORT}"
DRAIN_S = 20.0  # a push not answered this long after the last send counts as never answered
TARGET_RATIO = 10.0  # notify path ≥ 10× the naive loop
TARGET_RATE = 2000.0  # pushes/s in one process
TARGET_P99_MS = 20.0  # p99 at TARGET_OPEN_RATE
TARGET_OPEN_RATE = 1000.0


# --- pure helpers (tests/unit/test_bench_notify.py) ----------------------------------------


def due_count(elapsed_s: float, rate: float, total: int) -> int:
    """How many of `total` sends planned at `rate`/s, the first at 0, are due `elapsed_s` in."""
    if elapsed_s < 0:
        return 0
    return min(total, math.floor(elapsed_s * rate) + 1)


def latency_summary(latencies_ms: Sequence[float], expected: int, limit_ms: float) -> dict[str, Any]:
    """p50/p90/p99/max of `expected` pushes of which `latencies_ms` were answered.

    A push never answered counts as infinitely late, so a lost push cannot
    make the percentiles look better. `over_limit` counts the pushes slower
    than `limit_ms`, the missing ones included.
    """
    if len(latencies_ms) > expected:
        raise ValueError(f"{len(latencies_ms)} latencies for {expected} pushes")
    padded = [*latencies_ms, *[math.inf] * (expected - len(latencies_ms))]
    return {
        "count": expected, "answered": len(latencies_ms),
        "p50": percentile(padded, 50), "p90": percentile(padded, 90),
        "p99": percentile(padded, 99), "max": max(padded, default=math.nan),
        "over_limit": sum(1 for x in padded if x > limit_ms), "limit_ms": limit_ms,
    }


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of per-run ratios: each run's pair shares that run's machine noise."""
    if len(numerators) != len(denominators):
        raise ValueError("need one denominator per numerator")
    return median([n / d if d else math.inf for n, d in zip(numerators, denominators, strict=True)])


def verdict(value: float, target: float, *, at_least: bool) -> str:
    """MET or MISSED; a figure that could not be measured (NaN) is MISSED."""
    if math.isnan(value):
        return "MISSED"
    return "MET" if (value >= target if at_least else value < target) else "MISSED"


def per_core(cpu_us: float) -> float:
    """Pushes per second one fully busy core manages at `cpu_us` CPU µs per push."""
    return 1e6 / cpu_us if cpu_us > 0 else math.inf


def round_sizes(total: int, most: int) -> list[int]:
    """`total` pushes split into as few rounds of at most `most` as possible, evenly."""
    if total < 1 or most < 1:
        raise ValueError("need at least one push and a round of at least one")
    rounds = -(-total // most)
    return [total // rounds + (1 if i < total % rounds else 0) for i in range(rounds)]


def gc_figures(pauses: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """Count, full (generation 2) collections, total and longest pause of (generation, ms)."""
    return {"gc_count": len(pauses), "gc_full": sum(1 for g, _ in pauses if g == 2),
            "gc_total_ms": sum(ms for _, ms in pauses),
            "gc_max_ms": max((ms for _, ms in pauses), default=0.0)}


def combine_rounds(rounds: Sequence[dict[str, Any]], limit_ms: float) -> dict[str, Any]:
    """One phase's figures from its rounds' raw ones (pushes, delivered, failed, seconds,
    cpu_s, peer_cpu_s, gc_pauses, latencies_ms): rates over the summed measured time,
    percentiles over every push, CPU per push over every push."""
    pushes = sum(r["pushes"] for r in rounds)
    delivered = sum(r["delivered"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    cpu = sum(r["cpu_s"] for r in rounds)
    peer_cpu = sum(r["peer_cpu_s"] for r in rounds)
    pauses = [x for r in rounds for x in r["gc_pauses"]]
    lat = latency_summary([x for r in rounds for x in r["latencies_ms"]], pushes, limit_ms)
    return {
        "rounds": len(rounds), "pushes": pushes, "delivered": delivered,
        "failed": sum(r["failed"] for r in rounds), "seconds": seconds,
        "rate": delivered / seconds, "cpu_us": cpu / pushes * 1e6, "cores": cpu / seconds,
        "peer_cpu_us": peer_cpu / pushes * 1e6, "peer_cores": peer_cpu / seconds,
        **gc_figures(pauses),
        "latency_ms": {k: lat[k] for k in ("p50", "p90", "p99", "max")},
        "over_20ms": lat["over_limit"],
    }


# --- the push service and its devices ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    """A simulated browser's subscription (what `PushSubscription.toJSON()` gives)."""

    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, Any]:
        """The subscription as pywebpush takes it."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@dataclass
class PushPeer:
    """`python -m oo.pushservice` on PUSH_PORT, as a separate process."""

    ca_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / "ca.pem"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, devices: int, application_server_key: str, timeout: float = 30) -> list[Device]:
        """Start the service and subscribe `devices` simulated browsers to our VAPID key."""
        from oo.pushservice.client import ControlClient, ControlError

        control = ControlClient(PUSH_BASE, self.ca_file)
        if control.ready():
            raise BenchError(f"something already answers on {PUSH_BASE}: stop it first (the "
                             "benchmark starts its own push service there)")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # warning: the per-push info line (with the decrypted payload) is not what we measure
        command = [sys.executable, "-m", "oo.pushservice", "--port", str(PUSH_PORT),
                   "--ca-dir", str(self.ca_dir), "--log-level", "warning"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not control.ready():
            if self.process.poll() is not None:
                raise BenchError(f"the push service exited with {self.process.returncode} (is port "
                                 f"{PUSH_PORT} taken?); log {self.log}:\n{self._tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"the push service was not ready within {timeout:.0f}s; log {self.log}")
            time.sleep(0.1)
        try:
            subscriptions = [control.subscribe(application_server_key) for _ in range(devices)]
        except ControlError as err:
            raise BenchError(f"subscribing devices failed: {err}; log {self.log}") from None
        return [Device(s["endpoint"], s["keys"]["p256dh"], s["keys"]["auth"]) for s in subscriptions]

    def accepted(self, devices: Sequence[Device]) -> int:
        """Messages the service accepted (VAPID checked, payload decrypted) for `devices`."""
        from oo.pushservice.client import ControlClient

        control = ControlClient(PUSH_BASE, self.ca_file)
        return sum(len(control.messages(control.subscription_id(d.endpoint))) for d in devices)

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def stop(self, timeout: float = 10) -> None:
        stop_group(self.process, timeout)

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


@contextlib.contextmanager
def fresh_peer(peer: PushPeer, devices: int, key: str) -> Iterator[list[Device]]:
    """The push service started with empty state and `devices` new subscriptions; stopped after."""
    try:
        yield peer.start(devices, key)
    finally:
        peer.stop()


# --- decisions, as the engine makes them ----------------------------------------------------


def decisions(count: int, users: int, seed: str = "") -> list[Any]:
    """`count` TipDecided records cycling over `users` people and the advice catalogue."""
    from domain.candidates import ADVICE_TIP_PREFIX
    from domain.catalogue import default_catalogue
    from topics.records import Tip, TipDecided

    advices = default_catalogue().advices
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        a = advices[i % len(advices)]
        decision_id = uuid.uuid4().hex
        out.append(TipDecided(
            event_id=decision_id, user_id=f"bench-{seed}user-{i % users}", occurred_at=now,
            source="bench", decision_id=decision_id, triggered_by=uuid.uuid4().hex,
            moment="app_opened", policy="random", propensity=0.1, reason="bench",
            tip=Tip(id=ADVICE_TIP_PREFIX + a.id, kind="advice", title=a.title, body=a.body,
                    source="advice", meta={"advice_id": a.id, "topic": a.topic}),
            expires_at=now + timedelta(hours=2)))
    return out


# --- 1. the naive loop ----------------------------------------------------------------------


def naive_loop(peer: PushPeer, devices: Sequence[Device], decided: Sequence[Any], key_file: Path,
               subject: str) -> dict[str, Any]:
    """`pywebpush.webpush()` one call at a time, as in pywebpush's README.

    Same payload, TTL, Urgency and Topic as the notify path; the call reads the
    VAPID key from its file and signs a token every time, and `requests` opens a
    new HTTPS connection every time. requests trusts the test CA through
    REQUESTS_CA_BUNDLE, the standard way to point it at a CA.
    """
    from pywebpush import WebPushException, webpush
    from requests import RequestException

    from domain.push import PushPlan, plan_tip

    latencies: list[float] = []
    failed = 0
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(peer.ca_file)
    gc.collect()
    try:
        cpu0, peer0, start = time.process_time(), peer.cpu(), time.perf_counter()
        for i, record in enumerate(decided):
            device = devices[i % len(devices)]
            t0 = time.perf_counter()
            plan = plan_tip(record, datetime.now(UTC))
            assert isinstance(plan, PushPlan)
            try:
                webpush(device.info(), plan.payload.render().decode(),
                        vapid_private_key=str(key_file), vapid_claims={"sub": subject},
                        ttl=plan.ttl_s, timeout=10,
                        headers={"Urgency": plan.urgency, "Topic": plan.topic(device.endpoint)})
            except (WebPushException, RequestException):
                failed += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        peer_cpu = peer.cpu() - peer0
    finally:
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
    return {"pushes": len(decided), "delivered": len(latencies), "failed": failed,
            "seconds": elapsed, "rate": len(latencies) / elapsed,
            "cpu_us": cpu / len(decided) * 1e6, "peer_cpu_us": peer_cpu / len(decided) * 1e6,
            **_lat(latencies, len(decided))}


# --- 2, 3 and 4. the notify path, the ceiling, the open loop ---------------------------------


@contextlib.asynccontextmanager
async def production_sender(settings: Settings) -> AsyncIterator[Any]:
    """The worker's PushSender, built by the worker's own Notifier (agents/notify.py).

    Only its session and sender are used: its PostgreSQL pool (min_size 0)
    never connects, since nothing is recorded.
    """
    from agents.counters import Counters
    from agents.notify import Notifier

    notifier = Notifier(settings, Counters())
    await notifier.on_start()
    try:
        yield notifier.sender
    finally:
        await notifier.on_stop()


async def push_one(sender: Any, device: Device, record: Any) -> str:
    """What `Notifier.deliver` does for one decision, minus PostgreSQL: plan, then send."""
    from domain.push import PushPlan, plan_tip

    plan = plan_tip(record, datetime.now(UTC))
    assert isinstance(plan, PushPlan)
    [outcome] = await sender.send_many([device], plan)
    return str(outcome.status)


async def _warm_up(sender: Any, devices: Sequence[Device], window: int) -> None:
    """Open the session's keep-alive connections, as a long-running worker has them."""
    warm = decisions(2 * window, len(devices), seed="warm-")
    await asyncio.gather(*(push_one(sender, devices[i % len(devices)], r)
                           for i, r in enumerate(warm)))


async def _closed(peer: PushPeer, count: int, window: int,
                  push: Callable[[int], Awaitable[bool]]) -> dict[str, Any]:
    """`count` pushes as fast as possible, `window` in flight; `push(i)` says if i was delivered."""
    latencies: list[float] = []
    failed = 0
    order = iter(range(count))

    async def lane() -> None:
        nonlocal failed
        for i in order:  # shared by the lanes: each index is taken once
            t0 = time.perf_counter()
            if await push(i):
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                failed += 1

    gc.collect()  # the bench's own setup garbage is not the notify path's to collect
    with gc_pauses() as pauses:
        cpu0, peer0, start = time.process_time(), peer.cpu(), time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(window)))
        elapsed = time.perf_counter() - start
        cpu, peer_cpu = time.process_time() - cpu0, peer.cpu() - peer0
    return {"pushes": count, "delivered": len(latencies), "failed": failed, "seconds": elapsed,
            "cpu_s": cpu, "peer_cpu_s": peer_cpu, "gc_pauses": pauses, "latencies_ms": latencies}


async def closed_loop(settings: Settings, peer: PushPeer, devices: Sequence[Device],
                      decided: Sequence[Any], window: int) -> dict[str, Any]:
    """The notify path, every push as fast as possible, `window` decisions in flight."""
    async with production_sender(settings) as sender:
        await _warm_up(sender, devices, window)

        async def push(i: int) -> bool:
            return await push_one(sender, devices[i % len(devices)], decided[i]) == "delivered"

        return await _closed(peer, len(decided), window, push)


async def bare_post(peer: PushPeer, devices: Sequence[Device], decided: Sequence[Any],
                    window: int, key_file: Path, subject: str) -> dict[str, Any]:
    """The ceiling of any client against this push service on this machine.

    One body per device, encrypted before the clock starts, POSTed again and
    again on a plain keep-alive aiohttp session with a signed-once VAPID header
    and the same headers as the notify path: no encryption, no checks, no
    retries, no breaker in the loop — only HTTPS and the push service's work.
    """
    import aiohttp
    from pywebpush import WebPusher

    from adapters.webpush import VapidSigner
    from domain.push import PushPlan, plan_tip
    from oo.pushservice.ca import client_ssl_context
    from oo.vapid import load_vapid

    vapid = VapidSigner(load_vapid(key_file), subject).headers(PUSH_BASE)
    requests = []
    for i, device in enumerate(devices):
        plan = plan_tip(decided[i % len(decided)], datetime.now(UTC))
        assert isinstance(plan, PushPlan)
        body = WebPusher(device.info()).encode(plan.payload.render(), "aes128gcm")["body"]
        requests.append((device.endpoint, body, {
            **vapid, "TTL": str(plan.ttl_s), "Content-Encoding": "aes128gcm",
            "Urgency": plan.urgency, "Topic": plan.topic(device.endpoint)}))
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(peer.ca_file))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def push(i: int) -> bool:
            url, body, headers = requests[i % len(requests)]
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status == 201

        await asyncio.gather(*(push(i) for i in range(2 * window)))  # open the connections
        return await _closed(peer, len(decided), window, push)


async def open_loop(settings: Settings, peer: PushPeer, devices: Sequence[Device],
                    decided: Sequence[Any], rate: float, window: int) -> dict[str, Any]:
    """One push every 1/`rate` s, on the clock; latency from each push's planned time."""
    async with production_sender(settings) as sender:
        await _warm_up(sender, devices, window)
        n = len(decided)
        latencies: list[float] = []
        failed = 0

        async def timed(i: int, planned: float) -> None:
            nonlocal failed
            status = await push_one(sender, devices[i % len(devices)], decided[i])
            if status == "delivered":
                latencies.append((time.perf_counter() - planned) * 1000)
            else:
                failed += 1

        in_flight: set[asyncio.Task[None]] = set()  # finished tasks are let go, as in a worker
        sent = 0
        gc.collect()  # the bench's own setup garbage is not the notify path's to collect
        with gc_pauses() as pauses:
            cpu0, peer0 = time.process_time(), peer.cpu()
            begin = time.perf_counter() + 0.1
            behind = 0.0
            while sent < n:
                now = time.perf_counter()
                for i in range(sent, due_count(now - begin, rate, n)):
                    planned = begin + i / rate
                    behind = max(behind, now - planned)
                    task = asyncio.create_task(timed(i, planned))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    sent += 1
                await asyncio.sleep(max(0.0, begin + sent / rate - time.perf_counter()))
            sent_s = time.perf_counter() - begin
            unanswered = 0
            if in_flight:
                _, pending = await asyncio.wait(set(in_flight), timeout=DRAIN_S)
                unanswered = len(pending)
                for task in pending:
                    task.cancel()
            elapsed = time.perf_counter() - begin
            cpu, peer_cpu = time.process_time() - cpu0, peer.cpu() - peer0
    return {"pushes": n, "delivered": len(latencies), "failed": failed,
            "unanswered": unanswered, "target_rate": rate, "rate": n / sent_s,
            "seconds": sent_s, "sender_behind_ms": behind * 1000, "cpu_us": cpu / n * 1e6,
            "cores": cpu / elapsed, "peer_cpu_us": peer_cpu / n * 1e6,
            "peer_cores": peer_cpu / elapsed, **gc_figures(pauses), **_lat(latencies, n)}


@contextlib.contextmanager
def gc_pauses() -> Iterator[list[tuple[int, float]]]:
    """(generation, pause in ms) of this process's garbage collections inside the block:
    each one stops the event loop, so every push in flight waits for it."""
    pauses: list[tuple[int, float]] = []
    started = time.perf_counter()

    def hook(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - started) * 1000))

    gc.callbacks.append(hook)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(hook)


def _lat(latencies_ms: Sequence[float], expected: int) -> dict[str, Any]:
    summary = latency_summary(latencies_ms, expected, TARGET_P99_MS)
    return {"latency_ms": {k: summary[k] for k in ("p50", "p90", "p99", "max")},
            "over_20ms": summary["over_limit"]}


# --- 5. CPU per push, in process ---------------------------------------------------------------


def _cpu_us_per_call(step: Callable[[int], object], count: int, passes: int) -> float:
    """Median over `passes` of CPU µs per call of `step(i)` for i in range(count)."""
    results = []
    for _ in range(passes):
        t0 = time.process_time_ns()
        for i in range(count):
            step(i)
        results.append((time.process_time_ns() - t0) / count / 1000)
    return median(results)


def in_process_costs(key_file: Path, subject: str, count: int, passes: int) -> dict[str, Any]:
    """CPU µs per push of encryption alone, and of VAPID signing per call or cached."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from py_vapid import Vapid
    from pywebpush import WebPusher

    from adapters.webpush import VapidSigner
    from domain.push import PushPlan, plan_tip
    from oo.vapid import load_vapid

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    # browsers' keys, made here: this measures our side only
    pushers = []
    for _ in range(50):
        public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        pushers.append(WebPusher({"endpoint": f"{PUSH_BASE}/push/x",
                                  "keys": {"p256dh": b64(public), "auth": b64(os.urandom(16))}}))
    payloads = []
    for record in decisions(50, 50):
        plan = plan_tip(record, datetime.now(UTC))
        assert isinstance(plan, PushPlan)
        payloads.append(plan.payload.render())
    claims = {"sub": subject, "aud": PUSH_BASE}
    signer = VapidSigner(load_vapid(key_file), subject)
    small = max(1, count // 10)  # signing from the file is slow: fewer calls, same median
    return {
        "count": count, "passes": passes,
        "payload_bytes": median([len(p) for p in payloads]),
        "encrypt_us": _cpu_us_per_call(
            lambda i: pushers[i % 50].encode(payloads[i % 50], "aes128gcm"), count, passes),
        "vapid_from_file_and_sign_us": _cpu_us_per_call(
            lambda i: Vapid.from_file(private_key_file=str(key_file)).sign(
                {**claims, "exp": int(time.time()) + 43200}), small, passes),
        "vapid_cached_us": _cpu_us_per_call(lambda i: signer.headers(PUSH_BASE), count, passes),
    }


# --- the whole benchmark ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole notifier benchmark; returns every figure (also printed as it goes)."""
    from oo.vapid import generate_keys, load_vapid

    state = bench_settings().state_dir
    ca_dir = state / "push-ca"
    settings = bench_settings(OO_PUSH_CA_FILE=str(ca_dir / "ca.pem"),
                              OO_PUSH_EXTRA_HOSTS=f"127.0.0.1:{PUSH_PORT}")
    if not settings.vapid_private_key.exists():  # as the worker does outside production
        generate_keys(settings.vapid_private_key)
    vapid = load_vapid(settings.vapid_private_key)
    peer = PushPeer(ca_dir, state / "logs" / "push-service.log")
    results: dict[str, Any] = {
        "machine": {**machine(), **_versions()}, "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {"runs": args.runs, "devices": args.devices, "pushes": args.pushes,
                 "naive_pushes": args.naive_pushes, "round": args.round, "window": args.window,
                 "rate": args.rate, "duration": args.duration, "crypto_pushes": args.crypto_pushes,
                 "crypto_passes": args.crypto_passes},
        "naive": [], "notify": [], "ceiling": [], "open_loop": [], "source": _source(),
    }
    say(f"in process: CPU per push of encryption alone (aes128gcm) and VAPID signing, "
        f"{args.crypto_pushes:,} pushes x {args.crypto_passes} passes")
    costs = in_process_costs(settings.vapid_private_key, settings.vapid_subject,
                             args.crypto_pushes, args.crypto_passes)
    results["in_process"] = costs
    say(f"  encrypt {costs['encrypt_us']:.0f} µs/push (one core encrypts at most "
        f"{per_core(costs['encrypt_us']):,.0f} pushes/s); VAPID from file + sign "
        f"{costs['vapid_from_file_and_sign_us']:.0f} µs, cached {costs['vapid_cached_us']:.1f} µs")
    say(f"push service: python -m oo.pushservice on {PUSH_BASE}, CA in {ca_dir}, log {peer.log}; "
        f"restarted with {args.devices} new devices for each phase and round of at most "
        f"{args.round:,} pushes")
    try:
        for k in range(1, args.runs + 1):
            _one_run(args, settings, peer, vapid.public_key, k, results)
    finally:
        peer.stop()
    results["summary"] = summarize(results)
    print_summary(results)
    if args.json:
        Path(args.json).write_text(json.dumps(finite(results), indent=2, default=str) + "\n")
        say(f"figures written to {args.json}")
    return results


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("pywebpush", "http_ece", "py-vapid", "aiohttp", "cryptography", "requests"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _source() -> dict[str, Any]:
    """Which code was measured: the commit, and whether the measured files differ from it."""
    files = ["adapters/webpush.py", "adapters/endpoints.py", "agents/notify.py", "domain/push.py"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", *files], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_changes_in": None}
    return {"commit": commit, "uncommitted_changes_in": changed}


def _one_run(args: argparse.Namespace, settings: Settings, peer: PushPeer, key: str, k: int,
             results: dict[str, Any]) -> None:
    load = os.getloadavg()[0]
    results.setdefault("load_1min", []).append(load)
    say(f"run {k}/{args.runs} (load average {load:.2f}: other work shares the cores)")
    with fresh_peer(peer, args.devices, key) as devices:
        say(f"  naive: pywebpush.webpush() one at a time, {args.naive_pushes:,} pushes")
        naive = naive_loop(peer, devices, decisions(args.naive_pushes, args.devices),
                           settings.vapid_private_key, settings.vapid_subject)
        _check(peer, devices, naive)
    results["naive"].append(naive)
    say(f"  naive: {naive['rate']:,.0f} pushes/s, p50 {_ms(naive['latency_ms']['p50'])}, "
        f"p99 {_ms(naive['latency_ms']['p99'])}, {naive['cpu_us']:,.0f} CPU µs/push; push "
        f"service {naive['peer_cpu_us']:,.0f} µs/push")

    say(f"  notify path: PushSender, {args.pushes:,} pushes, {args.window} decisions in flight")
    ours = _in_rounds(args, peer, key, lambda devices, n: closed_loop(
        settings, peer, devices, decisions(n, args.devices), args.window))
    results["notify"].append(ours)
    say(f"  notify path: {ours['rate']:,.0f} pushes/s ({ours['rate'] / naive['rate']:.1f}x naive), "
        f"p50 {_ms(ours['latency_ms']['p50'])}, p99 {_ms(ours['latency_ms']['p99'])}, "
        f"{ours['cpu_us']:.0f} CPU µs/push ({ours['cores']:.2f} cores); push service "
        f"{ours['peer_cpu_us']:.0f} µs/push ({ours['peer_cores']:.2f} cores)")

    say(f"  ceiling: bare aiohttp POSTs of pre-encrypted bodies, {args.pushes:,} pushes, "
        f"{args.window} in flight")
    bare = _in_rounds(args, peer, key, lambda devices, n: bare_post(
        peer, devices, decisions(n, args.devices), args.window, settings.vapid_private_key,
        settings.vapid_subject))
    results["ceiling"].append(bare)
    say(f"  ceiling: {bare['rate']:,.0f} pushes/s, {bare['cpu_us']:.0f} CPU µs/push "
        f"({bare['cores']:.2f} cores); push service {bare['peer_cpu_us']:.0f} µs/push "
        f"({bare['peer_cores']:.2f} cores)")

    if args.duration > 0:
        count = max(1, round(args.rate * args.duration))
        with fresh_peer(peer, args.devices, key) as devices:
            say(f"  open loop: {args.rate:,.0f} pushes/s for {args.duration:g} s ({count:,} pushes)")
            open_ = asyncio.run(open_loop(settings, peer, devices,
                                          decisions(count, args.devices), args.rate, args.window))
            _check(peer, devices, open_, warm_up=2 * args.window)
        results["open_loop"].append(open_)
        lat = open_["latency_ms"]
        say(f"  open loop: sent at {open_['rate']:,.0f}/s, p50 {_ms(lat['p50'])}, p99 "
            f"{_ms(lat['p99'])}, max {_ms(lat['max'])}; {open_['over_20ms']} over 20 ms, "
            f"{open_['failed']} failed; {open_['cores']:.2f} cores, push service "
            f"{open_['peer_cores']:.2f}; sender {open_['sender_behind_ms']:.1f} ms behind at "
            f"most; GC paused the loop {open_['gc_count']} times ({open_['gc_full']} full), "
            f"at most {open_['gc_max_ms']:.1f} ms")


def _in_rounds(args: argparse.Namespace, peer: PushPeer, key: str,
               phase: Callable[[list[Device], int], Coroutine[Any, Any, dict[str, Any]]],
               ) -> dict[str, Any]:
    """`args.pushes` pushes in rounds of at most `args.round`, each on a fresh push service
    (whose CPU per push grows with the messages it holds)."""
    rounds = []
    for n in round_sizes(args.pushes, args.round):
        with fresh_peer(peer, args.devices, key) as devices:
            measured = asyncio.run(phase(devices, n))
            _check(peer, devices, measured, warm_up=2 * args.window)
        rounds.append(measured)
    return {**combine_rounds(rounds, TARGET_P99_MS), "window": args.window,
            "accepted_by_service": sum(r["accepted_by_service"] for r in rounds)}


def _check(peer: PushPeer, devices: Sequence[Device], phase: dict[str, Any], warm_up: int = 0) -> None:
    """The push service must have accepted (and decrypted) every push reported delivered."""
    accepted = peer.accepted(devices) - warm_up
    phase["accepted_by_service"] = accepted
    if accepted != phase["delivered"]:
        raise BenchError(f"{phase['delivered']} pushes reported delivered but the push service "
                         f"accepted {accepted}; log {peer.log}")
    if phase["failed"]:
        say(f"  warning: {phase['failed']} pushes failed; log {peer.log}")


def _ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.1f} ms"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    naive, ours, open_ = results["naive"], results["notify"], results["open_loop"]
    bare = results["ceiling"]

    def med(phase: Sequence[dict[str, Any]], key: str, quantile: str | None = None) -> float:
        return median([x[key][quantile] if quantile else x[key] for x in phase])

    summary: dict[str, Any] = {
        "naive": {"rate": med(naive, "rate"), "p50": med(naive, "latency_ms", "p50"),
                  "p99": med(naive, "latency_ms", "p99"), "cpu_us": med(naive, "cpu_us"),
                  "peer_cpu_us": med(naive, "peer_cpu_us")},
        "notify": {"rate": med(ours, "rate"), "p50": med(ours, "latency_ms", "p50"),
                   "p99": med(ours, "latency_ms", "p99"), "cpu_us": med(ours, "cpu_us"),
                   "cores": med(ours, "cores"), "peer_cpu_us": med(ours, "peer_cpu_us"),
                   "peer_cores": med(ours, "peer_cores")},
        "ratio": median_ratio([o["rate"] for o in ours], [n["rate"] for n in naive]),
        "ceiling": {"rate": med(bare, "rate"), "p50": med(bare, "latency_ms", "p50"),
                    "p99": med(bare, "latency_ms", "p99"), "cpu_us": med(bare, "cpu_us"),
                    "cores": med(bare, "cores"), "peer_cpu_us": med(bare, "peer_cpu_us"),
                    "peer_cores": med(bare, "peer_cores")},
        "of_ceiling": median_ratio([o["rate"] for o in ours], [b["rate"] for b in bare]),
        "ceiling_ratio": median_ratio([b["rate"] for b in bare], [n["rate"] for n in naive]),
    }
    if open_:
        summary["open_loop"] = {
            "rate": med(open_, "rate"), "p50": med(open_, "latency_ms", "p50"),
            "p90": med(open_, "latency_ms", "p90"), "p99": med(open_, "latency_ms", "p99"),
            "max": med(open_, "latency_ms", "max"), "cpu_us": med(open_, "cpu_us"),
            "cores": med(open_, "cores"), "peer_cores": med(open_, "peer_cores"),
            "over_20ms": sum(o["over_20ms"] for o in open_),
            "failed": sum(o["failed"] + o["unanswered"] for o in open_),
            "pushes": sum(o["pushes"] for o in open_),
            "sender_behind_ms": max(o["sender_behind_ms"] for o in open_),
            "gc_max_ms": max(o["gc_max_ms"] for o in open_),
            "gc_full": sum(o["gc_full"] for o in open_),
        }
    encrypt = results["in_process"]["encrypt_us"]
    summary["targets"] = [
        {"target": f"notify path ≥ {TARGET_RATIO:g}x naive loop",
         "measured": f"{summary['ratio']:.1f}x",
         "verdict": verdict(summary["ratio"], TARGET_RATIO, at_least=True)},
        {"target": f"≥ {TARGET_RATE:,.0f} pushes/s in one process",
         "measured": f"{summary['notify']['rate']:,.0f}/s",
         "verdict": verdict(summary["notify"]["rate"], TARGET_RATE, at_least=True)},
    ]
    if open_:
        p99 = summary["open_loop"]["p99"]
        summary["targets"].append(
            {"target": f"p99 < {TARGET_P99_MS:g} ms at {TARGET_OPEN_RATE:,.0f} pushes/s (open loop)",
             "measured": _ms(p99) if results["args"]["rate"] == TARGET_OPEN_RATE
             else f"{_ms(p99)} at {results['args']['rate']:,.0f}/s",
             "verdict": verdict(p99, TARGET_P99_MS, at_least=False)
             if results["args"]["rate"] == TARGET_OPEN_RATE else "not measured"})
    summary["encrypt_max_per_core"] = per_core(encrypt)
    return summary


def print_summary(results: dict[str, Any]) -> None:
    s, a, c = results["summary"], results["args"], results["in_process"]
    line = "-" * 96
    print(line)
    print(f"oO notifier benchmark — medians of {len(results['notify'])} run(s); push service "
          f"{PUSH_BASE} (HTTPS), {a['devices']} devices")
    print(line)
    print(f"{'':40}{'pushes/s':>9}{'p50':>10}{'p99':>11}{'CPU µs/push':>13}{'service':>9}  per run")
    n, o = s["naive"], s["notify"]
    per_run = " ".join(f"{x['rate']:.0f}" for x in results["naive"])
    print(f"{'naive webpush() loop, one at a time':40}{n['rate']:>9,.0f}{_ms(n['p50']):>10}"
          f"{_ms(n['p99']):>11}{n['cpu_us']:>13,.0f}{n['peer_cpu_us']:>9,.0f}  {per_run}")
    per_run = " ".join(f"{x['rate']:.0f}" for x in results["notify"])
    label = f"notify path (PushSender, {a['window']} in flight)"
    print(f"{label:40}{o['rate']:>9,.0f}{_ms(o['p50']):>10}{_ms(o['p99']):>11}"
          f"{o['cpu_us']:>13,.0f}{o['peer_cpu_us']:>9,.0f}  {per_run}")
    b = s["ceiling"]
    per_run = " ".join(f"{x['rate']:.0f}" for x in results["ceiling"])
    print(f"{'ceiling: bare POSTs, pre-encrypted':40}{b['rate']:>9,.0f}{_ms(b['p50']):>10}"
          f"{_ms(b['p99']):>11}{b['cpu_us']:>13,.0f}{b['peer_cpu_us']:>9,.0f}  {per_run}")
    if "open_loop" in s:
        ol = s["open_loop"]
        per_run = " ".join(f"{x['latency_ms']['p99']:.1f}" for x in results["open_loop"])
        label = f"open loop {a['rate']:,.0f}/s for {a['duration']:g} s"
        print(f"{label:40}{ol['rate']:>9,.0f}{_ms(ol['p50']):>10}{_ms(ol['p99']):>11}"
              f"{ol['cpu_us']:>13,.0f}{'':>9}  p99 {per_run}")
    print(f"{'encryption alone (aes128gcm, in process)':40}{'':>9}{'':>10}{'':>11}"
          f"{c['encrypt_us']:>13,.0f}{'':>9}  one core: at most {s['encrypt_max_per_core']:,.0f}/s")
    print(f"notify path / naive = {s['ratio']:.1f}x; notify path / ceiling = {s['of_ceiling']:.2f}; "
          f"ceiling / naive = {s['ceiling_ratio']:.1f}x (the most any client could show here: "
          f"the push service is {b['peer_cores']:.2f} cores busy at the ceiling)")
    print(f"notify path: this process {o['cores']:.2f} cores busy (at {o['cpu_us']:.0f} µs/push "
          f"one whole core would do {per_core(o['cpu_us']):,.0f}/s), the push service "
          f"{o['peer_cores']:.2f} ('service': its CPU µs/push); VAPID per call from file + sign "
          f"{c['vapid_from_file_and_sign_us']:.0f} µs, cached {c['vapid_cached_us']:.1f} µs")
    if "open_loop" in s:
        ol = s["open_loop"]
        print(f"open loop: p90 {_ms(ol['p90'])}, max {_ms(ol['max'])}; {ol['over_20ms']:,} of "
              f"{ol['pushes']:,} pushes over 20 ms, {ol['failed']} failed or unanswered; sender at "
              f"most {ol['sender_behind_ms']:.1f} ms behind its clock; longest GC pause "
              f"{ol['gc_max_ms']:.1f} ms ({ol['gc_full']} full collections); {ol['cores']:.2f} "
              f"cores, push service "
              f"{ol['peer_cores']:.2f}")
    print(line)
    width = max(len(t["target"]) for t in s["targets"])
    for t in s["targets"]:
        print(f"{t['target']:<{width}}   {t['measured']:>10}   {t['verdict']}")
    print(line)
