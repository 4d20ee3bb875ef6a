"""The web benchmark: `python -m bench.web` (figures and method: docs/benchmarks.md, "Web").

Against a real `oo web` (a subprocess on a free port, OO_ENV=test) on the
benchmark's own Kafka and PostgreSQL, with N people who each have a session
and a current tip (recorded by `TipStore.record_decision`, as the notifier
does). Each of the K runs, side by side:

1. `GET /health`, closed loop: the framework's ceiling on this machine (no
   database, no session);
2. `GET /api/tip`, closed loop, C keep-alive connections: session lookup
   (an UPDATE of `sessions.last_seen_at`) + the current tip's SELECT;
3. `GET /api/tip` at an open-loop constant rate (1,000/s): p50/p99/max,
   late sends and failures;
4. time to first paint in Chromium (Playwright, /usr/bin/chromium), cold
   (a new browser context per load) and warm (a reload), with a session cookie;
   and the page weight (HTML + /static/oo.js + /static/oo.css);
5. `POST /api/context`, closed loop: session, CSRF, validation, one outbox
   row + NOTIFY in a transaction; the relay then publishes it to Kafka (its CPU
   is counted: the phase ends when the outbox is empty);
6. reactions, closed loop: for every person's fresh tip, `seen` then `done`
   (both change the tip and write a feedback event; every request does real work).

The load comes from `python -m bench.webload`, a process of its own, so the
client never runs on the server's event loop. Reactions and context signals
are rate-limited per person (a burst of 30, then 1/s, web/app.py): the POST
phases spread their requests over all N people and stop at 10 per person per
run, so they measure the server, not the limiter (429s are counted and shown).

`--lighthouse` also runs Lighthouse (bench/lighthouse.py) against the page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import lighthouse
from bench.common import (
    ROOT,
    BenchError,
    bench_environ,
    bench_settings,
    local_infra,
    machine,
    median,
    positive,
    process_cpu,
    say,
    stop_group,
)
from bench.webload import build_request, finite
from oo.settings import Settings

PEOPLE_NAME = "oO web bench"  # users.display_name of the benchmark's people (deleted after)
CONTEXT_PER_PERSON = 10  # POST /api/context per person per run: a third of the limiter's burst
CHROMIUM = "/usr/bin/chromium"
# The flags of tests/browser/conftest.py.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_FILES = ("/", "/static/oo.js", "/static/oo.css")
OTHER_FILES = ("/manifest.webmanifest", "/sw.js", "/static/icons/icon-192.png")

TARGET_TIP_RPS = 3000.0
TARGET_P99_MS = 20.0
TARGET_OPEN_RATE = 1000.0
TARGET_PAGE_BYTES = 30 * 1024


# --- pure helpers (tests/unit/test_bench_web.py) ----------------------------------------


def verdict(value: float, target: float, *, at_least: bool) -> str:
    """MET or MISSED; a figure that could not be measured (NaN) is MISSED."""
    if math.isnan(value):
        return "MISSED"
    return "MET" if (value >= target if at_least else value < target) else "MISSED"


def median_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """The median of per-run ratios: each run's pair shares that run's machine noise."""
    if len(numerators) != len(denominators):
        raise ValueError("need one denominator per numerator")
    return median([n / d if d else math.inf for n, d in zip(numerators, denominators, strict=True)])


def per_request_us(cpu_s: float, requests: int) -> float:
    """CPU µs per request; NaN when nothing was served."""
    return cpu_s / requests * 1e6 if requests else math.nan


def page_weight(bodies: dict[str, bytes]) -> dict[str, Any]:
    """Bytes of each file and in total, uncompressed and gzipped (level 6, as nginx's default)."""
    files = {path: {"bytes": len(body), "gzip": len(gzip.compress(body, compresslevel=6, mtime=0))}
             for path, body in bodies.items()}
    return {"files": files, "bytes": sum(f["bytes"] for f in files.values()),
            "gzip": sum(f["gzip"] for f in files.values())}


def spread(people: int, per_person: int) -> int:
    """Requests a phase may send so no person goes past `per_person` (the rate limiter)."""
    return people * per_person


# --- the web process -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebServer:
    """`python -m oo web` on its own port with the benchmark's settings."""

    port: int
    log: Path
    vapid_key: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def environ(self) -> dict[str, str]:
        return bench_environ(OO_WEB_PORT=str(self.port), OO_VAPID_PRIVATE_KEY=str(self.vapid_key),
                             OO_WORKER_WEB_PORT=str(free_port()))

    def start(self, timeout: float = 60) -> None:
        from bench.common import http_get

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "oo", "web"], env=self.environ(),
                                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise BenchError(f"oo web exited with {self.process.returncode}; log {self.log}:\n{tail}")
            with contextlib.suppress(OSError):
                if http_get(f"{self.base}/ready", timeout=5)[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"oo web was not ready within {timeout:.0f}s; log {self.log}")
            time.sleep(0.2)

    def cpu(self) -> float:
        return process_cpu(self.pid)

    def stop(self, timeout: float = 20) -> None:
        stop_group(self.process, timeout)


def tree_cpu(root: int | None) -> float:
    """CPU seconds of `root` and its children (PostgreSQL: the postmaster and its backends)."""
    if root is None:
        return math.nan
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def postgres_pid(settings: Settings) -> int | None:
    from oo.infra.postgres import LocalPostgres

    return LocalPostgres.from_settings(settings, log=lambda _: None).status().pid


# --- people, sessions and tips ----------------------------------------------------------


@dataclass(frozen=True)
class Person:
    user_id: uuid.UUID
    token: str
    csrf_token: str


def decision(user_id: uuid.UUID) -> Any:
    """A TipDecided for `user_id`, as the engine sends it (a todo, open for 4 hours)."""
    from topics.records import Tip, TipDecided

    now = datetime.now(UTC)
    decision_id = uuid.uuid4().hex
    return TipDecided(
        event_id=decision_id, user_id=str(user_id), occurred_at=now, source="bench",
        decision_id=decision_id, triggered_by=f"bench-{decision_id}", moment="app_opened",
        policy="random", propensity=0.5, reason="app_opened: web benchmark",
        tip=Tip(id=f"todo:{decision_id[:12]}", kind="todo", title="Water the balcony plants",
                body="Five minutes, before the sun is on them.", source="bench"),
        context_snapshot={"moment": "app_opened"}, expires_at=now + timedelta(hours=4))


async def gather_limited(work: Callable[[Any], Awaitable[Any]], items: Sequence[Any],
                         limit: int) -> list[Any]:
    """`work(item)` for every item, at most `limit` at a time; the results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def forget_people(pool: Any) -> None:
    await pool.execute("DELETE FROM users WHERE display_name = $1", PEOPLE_NAME)


async def make_people(pool: Any, count: int) -> list[Person]:
    from web.session import open_session

    ids = [r["id"] for r in await pool.fetch(
        "INSERT INTO users (display_name) SELECT $1 FROM generate_series(1, $2) RETURNING id",
        PEOPLE_NAME, count)]
    sessions = await gather_limited(
        lambda u: open_session(pool, u, user_agent="oo-bench-web"), ids, 8)
    return [Person(s.user_id, s.token, s.csrf_token) for s in sessions]


async def record_tips(pool: Any, people: Sequence[Person]) -> list[str]:
    """A fresh current tip for each person (withdrawing the older one); the decision ids."""
    from adapters.tips import TipStore

    store = TipStore(pool)
    decided = [decision(p.user_id) for p in people]
    recorded = await gather_limited(store.record_decision, decided, 8)
    if not all(r.new for r in recorded):
        raise BenchError("record_decision did not store every benchmark tip")
    return [d.decision_id for d in decided]


async def outbox_drained(pool: Any, timeout: float = 60) -> float:
    """Seconds until the relay has published every queued outbox row."""
    start = time.monotonic()
    while await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
        if time.monotonic() - start > timeout:
            raise BenchError(f"the outbox relay did not drain the outbox within {timeout:.0f}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


# --- requests ---------------------------------------------------------------------------


def cookie(person: Person) -> dict[str, str]:
    from web.session import COOKIE

    return {"Cookie": f"{COOKIE}={person.token}"}


def get(path: str, host: str, person: Person | None = None) -> str:
    headers = {"Accept": "application/json", **(cookie(person) if person else {})}
    return build_request("GET", path, host=host, headers=headers).decode("latin-1")


def post(path: str, host: str, person: Person, body: dict[str, Any]) -> str:
    from web.session import CSRF_HEADER

    headers = {"Content-Type": "application/json", CSRF_HEADER: person.csrf_token, **cookie(person)}
    return build_request("POST", path, host=host, headers=headers,
                         body=json.dumps(body).encode()).decode("latin-1")


async def load(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in `python -m bench.webload`; its result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.webload", cwd=ROOT, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(json.dumps(job).encode())
    if proc.returncode != 0:
        raise BenchError(f"the load generator failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@dataclass
class Bench:
    args: argparse.Namespace
    settings: Settings
    server: WebServer
    pool: Any
    people: list[Person]
    page_people: list[Person]
    pg_pid: int | None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def measured(self, name: str, job: dict[str, Any], *,
                       drain: bool = False) -> dict[str, Any]:
        """A load phase with the server's and PostgreSQL's CPU around it."""
        job = {"host": "127.0.0.1", "port": self.server.port, **job}
        cpu0, pg0 = self.server.cpu(), tree_cpu(self.pg_pid)
        result = await load(job)
        if drain:
            result["relay_s"] = await outbox_drained(self.pool)
        server_cpu, pg_cpu = self.server.cpu() - cpu0, tree_cpu(self.pg_pid) - pg0
        result.update(
            name=name, server_cpu_s=server_cpu, server_cores=server_cpu / result["elapsed_s"],
            server_us=per_request_us(server_cpu, result["ok"]),
            postgres_us=per_request_us(pg_cpu, result["ok"]),
            client_us=per_request_us(result["client_cpu_s"], result["requests"]))
        lat = result["latency_ms"]
        extra = f", failed {result['failed']}"
        if job["mode"] == "open":
            stalls = [b for b in result["slow_bursts"] if b[2] >= 5]
            extra += (f", late {result['late']}, {len(result['slow'])} over {result['slow_ms']:.0f} ms"
                      f" ({len(stalls)} bursts of ≥ 5)")
        say(f"  {name}: {result['rps']:,.0f}/s ok, p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, "
            f"server {result['server_us']:,.0f} µs/req ({result['server_cores']:.2f} cores), "
            f"postgres {result['postgres_us']:,.0f} µs/req{extra} {result['statuses']}")
        return result

    async def one_run(self, index: int) -> dict[str, Any]:
        a, host = self.args, self.host
        say(f"run {index + 1}/{a.runs}: a fresh tip for each of {len(self.people)} people")
        decisions = await record_tips(self.pool, self.people)
        out: dict[str, Any] = {}
        closed = {"mode": "closed", "connections": a.connections, "duration": a.duration}
        out["health"] = await self.measured("GET /health", {
            **closed, "scripts": [[get("/health", host)]]})
        out["tip"] = await self.measured("GET /api/tip", {
            **closed, "scripts": [[get("/api/tip", host, p)] for p in self.people]})
        if a.open_duration > 0:
            out["open"] = await self.measured(f"GET /api/tip at {a.rate:,.0f}/s", {
                "mode": "open", "rate": a.rate, "duration": a.open_duration,
                "warm_connections": a.connections, "max_connections": 512,
                "scripts": [[get("/api/tip", host, p)] for p in self.people]})
        out["weight"] = weigh(self.server.base, self.page_people[0])
        if a.loads > 0:
            pagers = self.page_people[index * a.loads:(index + 1) * a.loads]
            out["paint"] = await first_paint(self.server.base, pagers)
        out["context"] = await self.measured("POST /api/context", {
            **closed, "expect": [202], "max_requests": spread(len(self.people), CONTEXT_PER_PERSON),
            "scripts": [[post("/api/context", host, p, {"kind": "page_visible"})]
                        for p in self.people]}, drain=True)
        out["reactions"] = await self.measured("POST reactions (seen, done)", {
            **closed, "duration": 0, "cycle": False, "expect": [202],
            "scripts": [[post(f"/api/tips/{d}/reactions", host, p, {"reaction": "seen"}),
                         post(f"/api/tips/{d}/reactions", host, p, {"reaction": "done",
                                                                     "dwell_ms": 1200})]
                        for p, d in zip(self.people, decisions, strict=True)]}, drain=True)
        return out


def _ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "never"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.1f} ms"


# --- the page ---------------------------------------------------------------------------


def weigh(base: str, person: Person) -> dict[str, Any]:
    """Page weight, uncompressed and gzipped, and what the server sends when asked for gzip."""
    bodies: dict[str, bytes] = {}
    served: dict[str, dict[str, Any]] = {}
    for path in (*PAGE_FILES, *OTHER_FILES):
        request = urllib.request.Request(base + path, headers=cookie(person))
        with urllib.request.urlopen(request, timeout=10) as response:
            bodies[path] = response.read()
        zipped = urllib.request.Request(base + path, headers={**cookie(person),
                                                              "Accept-Encoding": "gzip, br"})
        with urllib.request.urlopen(zipped, timeout=10) as response:
            served[path] = {"bytes": len(response.read()),
                            "encoding": response.headers.get("Content-Encoding") or "identity",
                            "cache_control": response.headers.get("Cache-Control"),
                            "etag": response.headers.get("ETag") is not None,
                            "last_modified": response.headers.get("Last-Modified") is not None}
    if b'id="tip"' not in bodies["/"] or b'data-decision-id' not in bodies["/"]:
        raise BenchError("the page has no tip for the benchmark's page person")
    page = page_weight({p: bodies[p] for p in PAGE_FILES})
    page["other"] = page_weight({p: bodies[p] for p in OTHER_FILES})
    page["served"] = served
    page["served_bytes"] = sum(served[p]["bytes"] for p in PAGE_FILES)
    return page


PAINT_JS = """() => new Promise((resolve) => {
  const read = () => {
    const paint = Object.fromEntries(performance.getEntriesByType('paint').map((e) => [e.name, e.startTime]));
    if (paint['first-contentful-paint'] === undefined) return false;
    const nav = performance.getEntriesByType('navigation')[0];
    resolve({fp: paint['first-paint'] ?? null, fcp: paint['first-contentful-paint'],
             ttfb: nav.responseStart, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
             tip: !!document.querySelector('#tip:not([hidden]) #tip-title')?.textContent});
    return true;
  };
  if (!read()) new PerformanceObserver(() => read()).observe({type: 'paint', buffered: true});
  setTimeout(() => resolve(null), 10000);
})"""


async def first_paint(base: str, pagers: Sequence[Person]) -> dict[str, Any]:
    """First (contentful) paint in Chromium: cold (a new context each load) and warm (a reload)."""
    from playwright.async_api import async_playwright

    from web.session import COOKIE

    cold: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=CHROMIUM_ARGS)
        try:
            for person in pagers:
                context = await browser.new_context(base_url=base,
                                                    viewport={"width": 412, "height": 860})
                await context.add_cookies([{"name": COOKIE, "value": person.token, "url": base,
                                            "httpOnly": True, "sameSite": "Lax"}])
                page = await context.new_page()
                await page.goto("/", wait_until="load")
                cold.append(await page.evaluate(PAINT_JS))
                await page.wait_for_timeout(300)  # let the service worker install
                await page.reload(wait_until="load")
                warm.append(await page.evaluate(PAINT_JS))
                await context.close()
        finally:
            await browser.close()
    if any(m is None or not m["tip"] for m in (*cold, *warm)):
        raise BenchError("a page load showed no tip or reported no first contentful paint")

    def med(rows: list[dict[str, Any]], key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None]
        return median(values) if values else math.nan

    keys = ("fp", "fcp", "ttfb", "dcl", "load")
    cold_ms, warm_ms = {k: med(cold, k) for k in keys}, {k: med(warm, k) for k in keys}
    say(f"  first paint: cold FP {_ms(cold_ms['fp'])} FCP {_ms(cold_ms['fcp'])}, "
        f"warm FCP {_ms(warm_ms['fcp'])} (median of {len(cold)} loads)")
    return {"loads": len(cold), "cold": cold_ms, "warm": warm_ms}


# --- the whole benchmark ----------------------------------------------------------------


async def bench(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    import asyncpg

    from topics.admin import ensure_topics

    await ensure_topics(settings.kafka_bootstrap_servers, partitions=settings.topic_partitions,
                        replication=1, log=lambda _: None)
    logs = settings.state_dir / "logs"
    server = WebServer(free_port(), logs / "web-bench.log", settings.state_dir / "web-bench" / "vapid.pem")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=8)
    results: dict[str, Any] = {"machine": machine(), "args": vars(args), "runs": []}
    try:
        await forget_people(pool)
        say(f"people: {args.people} with a session and a tip each (+ {page_count(args)} for the page)")
        people = await make_people(pool, args.people)
        page_people = await make_people(pool, page_count(args))
        await record_tips(pool, page_people)
        say(f"starting oo web on {server.base} (log {server.log})")
        await asyncio.to_thread(server.start)
        b = Bench(args, settings, server, pool, people, page_people, postgres_pid(settings))
        await smoke(b)
        if not args.lighthouse_only:
            for index in range(args.runs):
                results["runs"].append(await b.one_run(index))
        if args.lighthouse or args.lighthouse_only:
            results["lighthouse"] = await run_lighthouse(args, server, page_people[-1], logs)
    finally:
        server.stop()
        with contextlib.suppress(Exception):
            await forget_people(pool)
        await pool.close()
    return results


def page_count(args: argparse.Namespace) -> int:
    return args.runs * args.loads + 1


async def smoke(b: Bench) -> None:
    """The API answers the benchmark's people with their tip before anything is timed."""
    result = await load({"host": "127.0.0.1", "port": b.server.port, "mode": "closed",
                         "connections": 1, "cycle": False,
                         "scripts": [[get("/api/tip", b.host, p)] for p in b.people[:3]]})
    if result["ok"] != 3:
        raise BenchError(f"GET /api/tip did not answer 200 for the benchmark's people: {result}; "
                         f"log {b.server.log}")


async def run_lighthouse(args: argparse.Namespace, server: WebServer, person: Person,
                         logs: Path) -> dict[str, Any]:
    say(f"lighthouse in {lighthouse.relative(lighthouse.PEER)} (npm ci on first use)")
    await asyncio.to_thread(lighthouse.npm_ci)
    runs: list[dict[str, Any]] = []
    for i in range(args.lighthouse_runs):
        output = logs / f"lighthouse-{i + 1}.json"
        report = await asyncio.to_thread(lighthouse.run, server.base + "/", output, cookie(person))
        s = lighthouse.scores(report)
        runs.append({"scores": s, "lost": lighthouse.lost_points(report),
                     "metrics": lighthouse.metrics(report), "report": str(output),
                     "version": report.get("lighthouseVersion")})
        say(f"  lighthouse {i + 1}/{args.lighthouse_runs}: "
            + ", ".join(f"{k} {v}" for k, v in s.items()) + f" (report {output})")
    medians = {c: median([s[c] for s in (r["scores"] for r in runs) if s[c] is not None])
               for c in lighthouse.CATEGORIES}
    return {"runs": runs, "scores": medians,
            "command": shlex.join(lighthouse.command(server.base + "/", Path("report.json"),
                                                     {"Cookie": "oo_session=…"}))}


# --- the summary ------------------------------------------------------------------------


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    runs = results["runs"]

    def col(phase: str, *keys: str) -> list[float]:
        values = []
        for run in runs:
            if phase not in run:
                continue
            value: Any = run[phase]
            for key in keys:
                value = value.get(key)
            values.append(math.inf if value is None else value)  # JSON's null: never answered
        return values

    def fig(phase: str, *keys: str) -> float:
        values = col(phase, *keys)
        return median(values) if values else math.nan

    s: dict[str, Any] = {}
    for phase in ("health", "tip", "open", "context", "reactions"):
        if not col(phase, "rps"):
            continue
        s[phase] = {"rps": fig(phase, "rps"), "per_run": col(phase, "rps"),
                    "p50": fig(phase, "latency_ms", "p50"), "p99": fig(phase, "latency_ms", "p99"),
                    "max": fig(phase, "latency_ms", "max"),
                    "server_us": fig(phase, "server_us"), "postgres_us": fig(phase, "postgres_us"),
                    "client_us": fig(phase, "client_us"), "server_cores": fig(phase, "server_cores"),
                    "failed": sum(col(phase, "failed")),
                    "rate_limited": sum(r[phase]["statuses"].get("429", 0) for r in runs)}
        if phase == "open":
            s[phase].update(late=sum(col(phase, "late")), planned=sum(col(phase, "planned")),
                            p99_per_run=col(phase, "latency_ms", "p99"),
                            worst_late_ms=max(col(phase, "worst_late_ms")))
    if "tip" in s and "health" in s:
        s["tip_per_health"] = median_ratio(col("tip", "rps"), col("health", "rps"))
    if runs and "weight" in runs[0]:
        s["weight"] = runs[-1]["weight"]
    if runs and "paint" in runs[0]:
        s["paint"] = {mode: {k: median([r["paint"][mode][k] for r in runs])
                             for k in runs[0]["paint"][mode]} for mode in ("cold", "warm")}
        s["paint"]["loads"] = sum(r["paint"]["loads"] for r in runs)
    return s


def targets(s: dict[str, Any], lh: dict[str, Any] | None, rate: float) -> list[dict[str, str]]:
    rows = []
    if "tip" in s:
        rows.append({"target": f"GET /api/tip ≥ {TARGET_TIP_RPS:,.0f} requests/s",
                     "measured": f"{s['tip']['rps']:,.0f}/s",
                     "verdict": verdict(s["tip"]["rps"], TARGET_TIP_RPS, at_least=True)})
    if "open" in s:
        at = f" at {rate:,.0f}/s" + ("" if rate == TARGET_OPEN_RATE else " (target: at 1,000/s)")
        rows.append({"target": f"GET /api/tip p99 < {TARGET_P99_MS:.0f} ms{at}",
                     "measured": _ms(s["open"]["p99"]),
                     "verdict": verdict(s["open"]["p99"], TARGET_P99_MS, at_least=False)
                     if rate >= TARGET_OPEN_RATE else "MISSED"})
    if "weight" in s:
        rows.append({"target": "page weight (HTML+JS+CSS) < 30 KB uncompressed",
                     "measured": f"{s['weight']['bytes'] / 1024:,.1f} KB",
                     "verdict": verdict(s["weight"]["bytes"], TARGET_PAGE_BYTES, at_least=False)})
    if lh:
        for category, score in lh["scores"].items():
            rows.append({"target": f"Lighthouse {category} ≥ {lighthouse.TARGET_SCORE}",
                         "measured": f"{score:.0f}",
                         "verdict": verdict(score, lighthouse.TARGET_SCORE, at_least=True)})
    return rows


def print_summary(results: dict[str, Any]) -> None:
    s, args = results["summary"], results["args"]
    if s:
        print()
        print(f"oO web benchmark: {len(results['runs'])} runs, {args['people']:,} people, "
              f"{args['connections']} connections, medians (per run in the last column)")
        print(f"{'':34}{'req/s':>8}{'p50':>10}{'p99':>11}{'server µs':>11}{'pg µs':>8}"
              f"{'client µs':>11}  per run")
        labels = {"health": "GET /health (ceiling)", "tip": "GET /api/tip",
                  "open": f"GET /api/tip, open {args['rate']:,.0f}/s",
                  "context": "POST /api/context", "reactions": "POST reaction (seen, done)"}
        for phase, label in labels.items():
            if phase not in s:
                continue
            f = s[phase]
            per_run = " ".join(f"{x:,.0f}" for x in f["per_run"])
            print(f"{label:34}{f['rps']:>8,.0f}{_ms(f['p50']):>10}{_ms(f['p99']):>11}"
                  f"{f['server_us']:>11,.0f}{f['postgres_us']:>8,.0f}{f['client_us']:>11,.0f}"
                  f"  {per_run}")
        if "tip_per_health" in s:
            print(f"GET /api/tip / GET /health = {s['tip_per_health']:.2f}")
        if "open" in s:
            o = s["open"]
            print(f"open loop: {o['planned']:,} planned, {o['late']:,} sent > 5 ms late "
                  f"(worst {o['worst_late_ms']:,.1f} ms), {o['failed']:,} failed; max "
                  f"{_ms(o['max'])}; p99 per run " + " ".join(_ms(x) for x in o["p99_per_run"]))
        limited = {p: s[p]["rate_limited"] for p in ("context", "reactions") if p in s}
        if any(limited.values()):
            print(f"rate-limited (429): {limited}")
        if "weight" in s:
            w = s["weight"]
            files = ", ".join(f"{p} {f['bytes']:,} B" for p, f in w["files"].items())
            print(f"page weight: {w['bytes']:,} B ({w['bytes'] / 1024:.1f} KB), gzip -6 "
                  f"{w['gzip']:,} B; served with Accept-Encoding gzip: {w['served_bytes']:,} B "
                  f"({files})")
        if "paint" in s:
            p = s["paint"]
            print(f"Chromium, median of {p['loads']} loads: cold FP {_ms(p['cold']['fp'])}, FCP "
                  f"{_ms(p['cold']['fcp'])} (TTFB {_ms(p['cold']['ttfb'])}, load "
                  f"{_ms(p['cold']['load'])}); warm FCP {_ms(p['warm']['fcp'])}")
    lh = results.get("lighthouse")
    if lh:
        print("Lighthouse (mobile, simulated throttling), median of "
              f"{len(lh['runs'])}: " + ", ".join(f"{k} {v:.0f}" for k, v in lh["scores"].items()))
        last = lh["runs"][-1]
        print("  metrics: " + ", ".join(f"{k} {v}" for k, v in last["metrics"].items()))
        for category, lost in last["lost"].items():
            for audit in lost:
                print(f"  {category}: {audit['id']} score {audit['score']:.2f} (weight "
                      f"{audit['weight']}) {audit['value']} — {audit['title']}")
    rows = targets(s, lh, args["rate"])
    if rows:
        print()
        width = max(len(r["target"]) for r in rows)
        for r in rows:
            print(f"{r['target']:<{width}}   {r['measured']:>10}   {r['verdict']}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = bench_settings()
    say(f"web benchmark: {args.runs} runs; Kafka {settings.kafka_bootstrap_servers}, "
        f"PostgreSQL 127.0.0.1:{settings.database_url.rsplit(':', 1)[1].split('/')[0]}")
    with local_infra(settings, args.keep_infra):
        results = asyncio.run(bench(args, settings))
    results["summary"] = summarize(results)
    print_summary(results)
    if args.json:
        Path(args.json).write_text(json.dumps(finite(results), indent=2, default=str))
        say(f"figures written to {args.json}")
    return results


# --- command line -----------------------------------------------------------------------




def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.web",
        description="oO web benchmark, side by side in one run against a real `oo web` "
        "(OO_ENV=test, a free port) on the benchmark's own Kafka (127.0.0.1:39092) and "
        "PostgreSQL (127.0.0.1:35432) in /var/tmp/oo-bench-USER: requests/s, p50/p99 and "
        "server CPU µs per request of GET /health (the framework's ceiling), GET /api/tip "
        "(closed loop, and an open-loop constant rate), POST /api/context and reactions; "
        "the page's weight and first paint in Chromium; optionally Lighthouse. The load "
        "comes from a separate process (python -m bench.webload). Medians of the runs, "
        "ratios, and the targets MET or MISSED.",
    )
    p.add_argument("--runs", type=positive(int), default=3,
                   help="runs of every phase; figures are medians (default 3)")
    p.add_argument("--people", type=positive(int), default=2000,
                   help="people with a session and a tip; requests cycle over them (default 2000)")
    p.add_argument("--connections", type=positive(int), default=32,
                   help="keep-alive connections of the closed-loop phases (default 32)")
    p.add_argument("--duration", type=positive(float), default=5.0,
                   help="seconds of each closed-loop phase (default 5)")
    p.add_argument("--rate", type=positive(float), default=TARGET_OPEN_RATE,
                   help="GET /api/tip per second of the open-loop phase (default 1000, the target)")
    p.add_argument("--open-duration", type=float, default=5.0,
                   help="seconds of the open-loop phase; 0 skips it (default 5)")
    p.add_argument("--loads", type=int, default=7,
                   help="page loads in Chromium per run (cold, then a reload); 0 skips (default 7)")
    p.add_argument("--lighthouse", action="store_true",
                   help="also run Lighthouse against the page (npm ci in tests/peers/lighthouse "
                   "on first use)")
    p.add_argument("--lighthouse-only", action="store_true",
                   help="only Lighthouse: no load phases, no page loads")
    p.add_argument("--lighthouse-runs", type=positive(int), default=3,
                   help="Lighthouse runs; scores are medians (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="a short run (~1 min): 2 runs, 500 people, 2 s phases, 3 s open loop, "
                   "3 page loads, 1 Lighthouse run")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--keep-infra", action="store_true",
                   help="leave Kafka and PostgreSQL running at the end")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.runs, args.people, args.duration, args.open_duration = 2, 500, 2.0, 3.0
        args.loads, args.lighthouse_runs = 3, 1
    if args.open_duration < 0 or args.loads < 0:
        parser().error("--open-duration and --loads must be 0 or more")
    if args.lighthouse_only:
        args.runs, args.loads, args.people = 1, 0, 3
    try:
        run(args)
    except BenchError as err:
        print(f"bench web: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

