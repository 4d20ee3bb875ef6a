"""The pipeline benchmark: raw Kafka ceiling, engine throughput, CPU per stage, latency.

In one run, side by side, against the real local broker:

1. **stages** — CPU µs per signal of each part of the engine's hot path
   (decode, load, the pure step — fold, decide, timers —, emit, timer entries,
   store, RocksDB get+put), in this process on the same simulated signals;
2. **raw** — one plain `AIOKafkaConsumer` (no group) reading every signal
   from the signal topics: the ceiling for any consumer in Python;
3. **Faust floor** — `bench.floor`: a worker with the same Faust settings
   doing one table update per signal and nothing else (the best any agent
   with one table update per signal can do in one process);
4. **engine** — `oo worker` (fresh app id: new group, empty RocksDB tables)
   catching up on the same signals: the rate of `oo_signals_folded_total`
   between 10 % and 90 % of them, and the worker's and the broker's CPU per signal;
5. **latency** — an open-loop constant rate of app openings that each make
   a decision, sent with `oo-sent-ns` in the headers; the decision inherits
   the header, and a consumer of oo.tips.decided takes receive time − sent time;
6. **latency, split** — the same, with the engine and the notifier in two
   processes (`oo worker --role engine` on the same tables, `--role notify`
   caught up first): what the notify agents' share of the engine's core costs.

Each of the K runs starts from fresh topics and a freshly produced backlog;
the figures are medians and ratios (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.webload import finite  # the one JSON-safe writer, stdlib only
from bench.common import (
    BenchError,
    WorkerProcess,
    bench_settings,
    local_infra,
    machine,
    median,
    percentile,
    process_cpu,
    reset_topics,
    say,
)
from oo.settings import Settings
from topics.catalog import FEEDBACK, SIGNALS, TIMERS, TIPS_DECIDED

SIGNAL_TOPICS = tuple(spec.name for spec in SIGNALS.values())
DOMAIN_BY_TOPIC = {spec.name: domain for domain, spec in SIGNALS.items()}
# Topics the worker writes (and, for timers and feedback, reads back): emptied before each run.
OUTPUT_TOPICS = (TIMERS.name, FEEDBACK.name, TIPS_DECIDED.name, "oo.deadletter")
SIGNALS_PER_PERSON = 24  # the simulator's mix gives ~12 signals per person-day; 2 days


# --- the signals -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signal:
    topic: str
    key: bytes
    value: bytes
    record: Any


def simulated_signals(count: int, start: datetime, seed: int = 7) -> list[Signal]:
    """`count` signals of the simulator's realistic mix, in event-time order (~24 per person).

    The simulated days start now, so signals make moments and decisions as live
    ones would (the engine judges an event from the future at its own time).
    """
    from oo.simulator import simulate_people
    from topics.codec import encode

    people = max(1, math.ceil(count / SIGNALS_PER_PERSON * 1.1))
    out: list[Signal] = []
    for topic, record in simulate_people(people, start, 2, seed=seed, prefix="bench"):
        out.append(Signal(topic, record.user_id.encode(), encode(record), record))
        if len(out) == count:
            break
    return out


def is_account(signal: Signal) -> bool:
    """A person's `user_created` lifecycle signal."""
    return getattr(signal.record, "change", None) == "user_created"


async def produce(bootstrap: str, signals: Sequence[Signal]) -> float:
    """Send every signal (acks=all) as fast as the broker takes them; return the seconds."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                                max_batch_size=256 * 1024, enable_idempotence=True)
    await producer.start()
    started = time.monotonic()
    last = started
    try:
        pending: list[asyncio.Future[Any]] = []
        for i, s in enumerate(signals, 1):
            pending.append(await producer.send(s.topic, value=s.value, key=s.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                if time.monotonic() - last > 5:
                    last = time.monotonic()
                    say(f"  produced {i:,} of {len(signals):,}")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


# --- rates from (time, count, cpu...) samples --------------------------------------------


def window(samples: Sequence[tuple[float, ...]], total: int, low: float = 0.1,
           high: float = 0.9) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The first samples at or past `low` and `high` of `total` (column 1 is the count)."""
    first = next(s for s in samples if s[1] >= low * total)
    last = next(s for s in samples if s[1] >= high * total)
    if last[1] <= first[1] or last[0] <= first[0]:
        raise BenchError("too few samples to compute a rate; use more --signals")
    return first, last


# --- 1. raw ceiling ----------------------------------------------------------------------


async def raw_consume(bootstrap: str, total: int, broker_pid: int | None,
                      min_messages: int = 600_000) -> dict[str, float]:
    """One AIOKafkaConsumer (no group) reading the signal topics from the start.

    The topics are read again from the start until at least `min_messages` were
    read, so the 10-90 % window lasts long enough to time on a noisy machine.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    passes = max(1, math.ceil(min_messages / total))
    goal = passes * total
    try:
        meta = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(t, p) for t in SIGNAL_TOPICS
                 for p in sorted(meta.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        count = 0
        def broker() -> float:
            return process_cpu(broker_pid) if broker_pid else 0.0

        samples = [(time.monotonic(), 0, time.process_time(), broker())]
        deadline = time.monotonic() + 300
        while count < goal:
            # Small batches only make the samples fine enough for a 10-90 % window;
            # the fetcher prefetches in the background either way.
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batch.values():
                count += len(records)
            samples.append((time.monotonic(), count, time.process_time(), broker()))
            if count and count % total == 0 and count < goal:
                await consumer.seek_to_beginning(*parts)  # next pass
            if time.monotonic() > deadline:
                raise BenchError(f"raw consumer read only {count} of {goal} signals in 300s")
    finally:
        await consumer.stop()
    first, last = window(samples, goal)
    messages = last[1] - first[1]
    return {"rate": messages / (last[0] - first[0]),
            "cpu_us": (last[2] - first[2]) / messages * 1e6,
            "broker_cpu_us": (last[3] - first[3]) / messages * 1e6,
            "seconds": samples[-1][0] - samples[0][0], "passes": passes}


# --- 2. the engine -----------------------------------------------------------------------


def engine_catch_up(worker: WorkerProcess, total: int, broker_pid: int | None,
                    poll: float = 0.1, quiet: bool = False) -> dict[str, float]:
    """Start the worker on the backlog and sample its folded counter and CPU until done."""
    started = time.monotonic()
    worker.start()
    ready = time.monotonic()
    samples: list[tuple[float, int, float, float]] = []
    last_progress, last_count, last_note = ready, -1, ready
    while True:
        counters = worker.counters()
        now = time.monotonic()
        folded = counters.get("oo_signals_folded_total", 0)
        broker = process_cpu(broker_pid) if broker_pid else 0.0
        samples.append((now, folded, worker.cpu(), broker))
        if folded >= total:
            break
        if folded != last_count:
            last_progress, last_count = now, folded
        elif now - last_progress > 90:
            raise BenchError(f"the worker made no progress for 90s at {folded:,} of {total:,} "
                             f"signals; log {worker.log}")
        if now - last_note > 10 and not quiet:
            last_note = now
            say(f"  engine: {folded:,} of {total:,} signals folded")
        worker.check_alive()
        time.sleep(poll)
    first, last = window(samples, total)
    signals = last[1] - first[1]
    first_folded = next(s[0] for s in samples if s[1] > 0)
    return {
        "rate": signals / (last[0] - first[0]),
        "cpu_us": (last[2] - first[2]) / signals * 1e6,
        "cores": (last[2] - first[2]) / (last[0] - first[0]),
        "broker_cpu_us": (last[3] - first[3]) / signals * 1e6,
        "startup_s": first_folded - started,
        "ready_s": ready - started,
        "catch_up_s": samples[-1][0] - first_folded,
        "decisions": counters.get("oo_decisions_total", 0),
        "dead_letters": counters.get("oo_dead_letters_total", 0),
        "errors": counters.get("oo_agent_errors_total", 0),
    }


# --- 3. latency ----------------------------------------------------------------------------


def _lifecycle(user_id: str, now: datetime) -> bytes:
    """A new person whose quiet hours are far from now and whose budget is large."""
    from topics.codec import encode
    from topics.records import LifecycleChanged

    minute = now.hour * 60 + now.minute
    return encode(LifecycleChanged(
        event_id=f"{user_id}-created", user_id=user_id, occurred_at=now, source="bench",
        change="user_created", time_zone="UTC", quiet_start_minute=(minute + 600) % 1440,
        quiet_end_minute=(minute + 660) % 1440, daily_budget=24))


def _app_opened(user_id: str, tag: str, at: datetime) -> bytes:
    from topics.codec import encode
    from topics.records import ContextObserved

    return encode(ContextObserved(event_id=f"{user_id}-open-{tag}", user_id=user_id, occurred_at=at,
                                  source="bench", kind="app_opened", device="phone"))


async def _wait_folded(worker: WorkerProcess, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        folded = (await asyncio.to_thread(worker.counters)).get("oo_signals_folded_total", 0)
        if folded >= target:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the worker folded {folded:,} of {target:,} signals in {timeout:.0f}s")
        worker.check_alive()
        await asyncio.sleep(0.1)


async def latency(bootstrap: str, workers: Sequence[WorkerProcess], rates: Sequence[float],
                  duration: float, already_folded: int, drain: float = 20.0) -> list[dict[str, float]]:
    """Open-loop app openings at each of `rates`/s for `duration` s: signal → decision latencies.

    `workers[0]` runs the engine; the CPU reported is all of theirs together.

    Each app opening is sent at its planned time whatever happened to the ones
    before (open loop: a slow worker cannot slow the load down and hide its own
    queueing). A decision that has not arrived `drain` s after the last send
    counts as infinitely late.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    lifecycle = SIGNALS["lifecycle"].name
    # UUIDs, like real accounts: the notify agent looks each decision's person up.
    people = [[str(uuid.uuid4()) for _ in range(max(1, int(rate * duration)))] for rate in rates]
    everyone = [u for group in people for u in group]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, fetch_max_wait_ms=100)
    await producer.start()
    await consumer.start()
    try:
        # The people first (a lifecycle signal each), folded before any clock starts.
        say(f"  latency: creating {len(everyone):,} people (a lifecycle signal each)")
        now = datetime.now(UTC)
        futures = [await producer.send(lifecycle, value=_lifecycle(u, now), key=u.encode())
                   for u in everyone]
        await asyncio.gather(*futures)
        await _wait_folded(workers[0], already_folded + len(everyone), timeout=300)
        await asyncio.sleep(2)  # the timers their creation planned are consumed too
        meta = await consumer._client.fetch_all_metadata()
        parts = [TopicPartition(TIPS_DECIDED.name, p)
                 for p in sorted(meta.partitions_for_topic(TIPS_DECIDED.name) or ())]
        consumer.assign(parts)
        out = []
        for rate, users in zip(rates, people, strict=True):
            out.append(await _open_loop(producer, consumer, parts, workers, rate, users, drain))
            lat = out[-1]
            say(f"  latency at {rate:,.0f}/s: p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, "
                f"max {_ms(lat['max'])}; {lat['received']:,} of {lat['sent']:,} decisions; "
                f"worker {lat['worker_cores']:.2f} cores")
        return out
    finally:
        await consumer.stop()
        await producer.stop()


async def _open_loop(producer: Any, consumer: Any, parts: list[Any],
                     workers: Sequence[WorkerProcess], rate: float, users: Sequence[str],
                     drain: float) -> dict[str, float]:
    context = SIGNALS["context"].name
    tag = uuid.uuid4().hex[:8]
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    # Values are built before the clock starts; occurred_at is each one's planned send time.
    begin = time.monotonic() + 0.5
    wall = datetime.now(UTC) + timedelta(seconds=0.5)
    values = [_app_opened(u, tag, wall + timedelta(seconds=i / rate)) for i, u in enumerate(users)]
    marker = tag.encode()
    latencies: list[float] = []
    done = asyncio.Event()

    async def receive() -> None:
        while len(latencies) < len(users):
            batch = await consumer.getmany(timeout_ms=100)
            arrived = time.time_ns()
            for records in batch.values():
                for r in records:
                    headers = dict(r.headers or ())
                    if headers.get("oo-bench") == marker and "oo-sent-ns" in headers:
                        latencies.append((arrived - int(headers["oo-sent-ns"])) / 1e6)
        done.set()

    receiver = asyncio.create_task(receive())
    cpu0 = sum(w.cpu() for w in workers)
    lateness = 0.0
    i = 0
    while i < len(users):
        now = time.monotonic()
        due = min(len(users), int((now - begin) * rate) + 1) if now >= begin else 0
        while i < due:
            lateness = max(lateness, now - (begin + i / rate))
            await producer.send(context, value=values[i], key=users[i].encode(), headers=[
                ("oo-sent-ns", str(time.time_ns()).encode()), ("oo-bench", marker)])
            i += 1
        await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
    await producer.flush()
    sent_s = time.monotonic() - begin
    cpu = sum(w.cpu() for w in workers) - cpu0
    try:
        await asyncio.wait_for(done.wait(), timeout=drain)
    except TimeoutError:
        pass
    receiver.cancel()
    received = len(latencies)
    if not received:
        raise BenchError(f"no decision came back for {len(users)} app openings; log "
                         f"{workers[0].log}")
    padded = latencies + [math.inf] * (len(users) - received)
    return {
        "target_rate": rate, "sent": len(users), "received": received,
        "rate": len(users) / sent_s, "p50": percentile(padded, 50),
        "p90": percentile(padded, 90), "p99": percentile(padded, 99), "max": max(padded),
        "sender_late_ms": lateness * 1000, "worker_cores": cpu / sent_s,
    }


def _ms(value: float) -> str:
    return "never (not all arrived)" if math.isinf(value) else f"{value:,.1f} ms"


# --- 4. CPU per stage, in process ------------------------------------------------------------


@dataclass(slots=True)
class _Case:
    spec: Any
    domain: str
    key: bytes
    value: bytes
    stored: bytes | None
    timers: bytes | None
    now: datetime
    partition: int


def _record_cases(signals: Sequence[Signal]) -> list[_Case]:
    """Run the engine's step once over `signals` with dict tables, keeping each step's input."""
    from agents.engine import person_of
    from agents.schedule import encode_entry
    from agents.state import dump_state
    from domain.step import Config, Signalled, step
    from topics.validation import decode_event

    table: dict[bytes, bytes] = {}
    timer_table: dict[bytes, bytes] = {}
    config = Config("random")
    cases = []
    for s in signals:
        domain = DOMAIN_BY_TOPIC[s.topic]
        spec = SIGNALS[domain]
        record = decode_event(spec, s.key, s.value)
        stored, timers = table.get(s.key), timer_table.get(s.key)
        wall = datetime.now(UTC)
        now = record.occurred_at if record.occurred_at > wall else wall
        person = person_of(s.key, stored, timers)
        done = step(person, Signalled(record, domain), now, config)
        after = done.person
        if after.features is person.features or after.features is None:
            continue  # a duplicate, or a deletion: not the path being measured
        cases.append(_Case(spec, domain, s.key, s.value, stored, timers, now, hash(s.key) % 4))
        if after.timers is not person.timers:
            timer_table[s.key] = encode_entry(0, after.timers)
        table[s.key] = dump_state(after.features)
    return cases


def _stage_pass(cases: Sequence[_Case], db: Any, chunk: int = 100) -> dict[str, float]:
    """One timed pass of every stage over `cases`: CPU µs per signal of each.

    Stages run chunk by chunk (each stage over `chunk` signals, then the next
    stage), so the process keeps only a few states alive, as the worker does:
    holding thousands would make the garbage collector's cost unlike the worker's.
    """
    totals: dict[str, int] = {}
    gc.collect()
    for i in range(0, len(cases), chunk):
        for stage, ns in _stage_chunk(cases[i:i + chunk], db).items():
            totals[stage] = totals.get(stage, 0) + ns
    return {stage: ns / len(cases) / 1000 for stage, ns in totals.items()}


def _stage_chunk(cases: Sequence[_Case], db: Any) -> dict[str, int]:
    from agents.engine import decision_record, person_of
    from agents.schedule import TimerSchedule, encode_entry
    from agents.state import dump_state
    from domain.step import Config, SendDecision, Signalled, step
    from topics.codec import encode
    from topics.validation import decode_event

    clock = time.process_time_ns
    config = Config("random")
    out: dict[str, int] = {}

    t = clock()
    records = [decode_event(c.spec, c.key, c.value) for c in cases]
    out["decode"] = clock() - t

    t = clock()
    people = [person_of(c.key, c.stored, c.timers) for c in cases]
    out["load"] = clock() - t

    t = clock()
    steps = [step(p, Signalled(r, c.domain), c.now, config)
             for p, r, c in zip(people, records, cases, strict=True)]
    out["step"] = clock() - t

    t = clock()
    for done in steps:
        for effect in done.effects:
            if isinstance(effect, SendDecision):
                encode(decision_record(effect.decision))
    out["emit"] = clock() - t

    schedule = TimerSchedule()
    t = clock()
    for before, done, c in zip(people, steps, cases, strict=True):
        if done.person.timers is not before.timers:
            encode_entry(c.partition, done.person.timers)
            schedule.replace_user(c.key, c.partition, done.person.timers)
    out["timer entries"] = clock() - t

    t = clock()
    stored = [dump_state(done.person.features) for done in steps if done.person.features]
    out["store"] = clock() - t

    t = clock()
    for c, value in zip(cases, stored, strict=True):
        db.get(c.key)
        db[c.key] = value
    out["rocksdb get+put"] = clock() - t
    return out


def stage_costs(signals: Sequence[Signal], repeats: int) -> dict[str, Any]:
    """Median CPU µs per signal of each engine step over `repeats` passes."""
    from faust.stores.rocksdb import RocksDBOptions

    cases = _record_cases(signals)
    folder = Path(tempfile.mkdtemp(prefix="oo-bench-rocksdb-"))
    db = RocksDBOptions(use_rocksdict=True).open(folder / "features.db")
    try:
        passes = [_stage_pass(cases, db) for _ in range(repeats)]
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)
    stages = {stage: median([p[stage] for p in passes]) for stage in passes[0]}
    return {"signals": len(cases), "repeats": repeats, "stages": stages,
            "total": sum(stages.values())}


# --- the whole run ------------------------------------------------------------------------------


def _faust_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise BenchError(f"--faust {pair!r}: expected NAME=VALUE, e.g. producer_linger=0.005")
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns every figure (also printed as it goes)."""
    import logging

    # aiokafka warns (and retries) while a just-created topic elects its leaders.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    settings = bench_settings(OO_LOG_LEVEL=args.log_level)
    overrides = _faust_overrides(args.faust or [])
    log_dir = settings.state_dir / "logs"
    results: dict[str, Any] = {
        "machine": machine(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {"signals": args.signals, "runs": args.runs, "rates": args.rates,
                 "duration": args.duration, "log_level": args.log_level, "faust": overrides},
        "raw": [], "floor": [], "engine": [], "latency": [], "latency_split": [],
        "produce": [],
    }
    say(f"generating {args.signals:,} simulated signals (~{SIGNALS_PER_PERSON} per person, "
        "2 simulated days from now)")
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    signals = simulated_signals(args.signals, start)

    if args.stage_signals:
        subset = simulated_signals(args.stage_signals, start, seed=11)
        say(f"stages: CPU per signal of each engine step, in process, {len(subset):,} signals "
            f"x {args.stage_repeats} passes")
        results["stages"] = stage_costs(subset, args.stage_repeats)
        _print_stages(results["stages"])

    say(f"infrastructure: Kafka {settings.kafka_version} on {settings.kafka_bootstrap_servers}, "
        f"PostgreSQL on {settings.database.host}:{settings.database.port}, state in "
        f"{settings.state_dir}")
    with local_infra(settings, keep=args.keep_infra) as broker_pid:
        results["machine"]["kafka"] = settings.kafka_version
        for k in range(1, args.runs + 1):
            _one_run(args, settings, signals, overrides, log_dir, broker_pid, k, results)
        results["summary"] = summarize(results)
    print_summary(results)
    if args.json:
        Path(args.json).write_text(json.dumps(finite(results), indent=2, default=str) + "\n")
        say(f"figures written to {args.json}")
    return results


def _one_run(args: argparse.Namespace, settings: Settings, signals: Sequence[Signal],
             overrides: dict[str, Any], log_dir: Path, broker_pid: int | None, k: int,
             results: dict[str, Any]) -> None:
    """Fresh topics and backlog; the raw consumer; a fresh worker on it; then latency."""
    bootstrap = settings.kafka_bootstrap_servers
    say(f"run {k}/{args.runs}: fresh topics, {len(signals):,} signals produced up front")
    asyncio.run(reset_topics(bootstrap, settings.topic_partitions, prefixes=("oo-bench-",)))
    # People sign up before their signals pile up: the engine folds the accounts first
    # (no tip is decided before a person's time zone and quiet hours are known, and a
    # backlog is read from all topics at once, in no fixed order), then stops; the
    # rest of the backlog is produced while it is down, and it catches up on that.
    accounts = [s for s in signals if is_account(s)]
    backlog = [s for s in signals if not is_account(s)]
    worker = WorkerProcess(settings, log_dir, overrides)
    asyncio.run(produce(bootstrap, accounts))
    worker.start()
    try:
        asyncio.run(_wait_folded(worker, len(accounts), timeout=300))
    finally:
        worker.stop()
    say(f"  engine: {len(accounts):,} people signed up (folded, worker stopped)")
    seconds = asyncio.run(produce(bootstrap, backlog))
    results["produce"].append({"seconds": seconds, "rate": len(backlog) / seconds})
    raw = asyncio.run(raw_consume(bootstrap, len(signals), broker_pid))
    results["raw"].append(raw)
    say(f"  raw aiokafka consumer: {raw['rate']:,.0f} signals/s, {raw['cpu_us']:.1f} CPU "
        f"µs/signal, broker {raw['broker_cpu_us']:.1f} µs/signal")
    if not args.skip_floor:
        floor = WorkerProcess(settings, log_dir, overrides, module="bench.floor")
        try:
            result = engine_catch_up(floor, len(signals), broker_pid, quiet=True)
        finally:
            floor.stop()
            floor.cleanup()
        results["floor"].append(result)
        say(f"  Faust floor (one table update per signal, nothing else): {result['rate']:,.0f} "
            f"signals/s, {result['cpu_us']:.0f} CPU µs/signal, broker "
            f"{result['broker_cpu_us']:.0f} µs/signal")
    say(f"  engine: `oo worker` (app id {worker.app_id}, RocksDB tables) catching up on "
        f"{len(backlog):,} signals")
    try:
        engine = engine_catch_up(worker, len(backlog), broker_pid)
        results["engine"].append(engine)
        say(f"  engine: {engine['rate']:,.0f} signals/s, worker {engine['cpu_us']:.0f} CPU "
            f"µs/signal ({engine['cores']:.2f} cores), broker {engine['broker_cpu_us']:.0f} "
            f"µs/signal; first signal {engine['startup_s']:.1f}s after start, "
            f"{engine['decisions']:,} decisions")
        if args.duration > 0 and args.rates:
            results["latency"].append(asyncio.run(latency(
                bootstrap, [worker], args.rates, args.duration, len(backlog))))
            if not args.no_split:
                worker.stop()
                results["latency_split"].append(_split_latency(args, settings, overrides,
                                                               log_dir, worker.app_id))
    finally:
        worker.stop()
        worker.cleanup()


def _split_latency(args: argparse.Namespace, settings: Settings, overrides: dict[str, Any],
                   log_dir: Path, app_id: str) -> list[dict[str, float]]:
    """The latency phases again, with `oo worker --role engine` and `--role notify`."""
    engine = WorkerProcess(settings, log_dir, overrides, app_id=app_id, role="engine")
    notifier = WorkerProcess(settings, log_dir, overrides, app_id=app_id, role="notify",
                             web_port=settings.worker_web_port + 1)
    say("  latency, split: `oo worker --role engine` (same tables) and `--role notify` "
        "(a new group: it reads every decision so far first)")
    try:
        engine.start()
        notifier.start()
        asyncio.run(_caught_up(notifier, timeout=300))
        return asyncio.run(latency(settings.kafka_bootstrap_servers, [engine, notifier],
                                   args.rates, args.duration, already_folded=0))
    finally:
        for process in (notifier, engine):
            process.stop()
        notifier.cleanup()


async def _caught_up(worker: WorkerProcess, timeout: float) -> None:
    """Until the worker's consumer lag, summed over its partitions, is 0 twice in a row."""
    deadline = time.monotonic() + timeout
    zero = 0
    while zero < 2:
        worker.check_alive()
        text = await asyncio.to_thread(worker.counters)
        lag = text.get("oo_consumer_lag")
        zero = zero + 1 if lag == 0 else 0
        if time.monotonic() > deadline:
            raise BenchError(f"the {worker.role} worker still lags {lag} after {timeout:.0f}s; "
                             f"log {worker.log}")
        await asyncio.sleep(0.5)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    raw, engine = results["raw"], results["engine"]
    summary: dict[str, Any] = {
        "raw_rate": median([r["rate"] for r in raw]),
        "raw_cpu_us": median([r["cpu_us"] for r in raw]),
        "raw_broker_cpu_us": median([r["broker_cpu_us"] for r in raw]),
        "engine_rate": median([e["rate"] for e in engine]),
        "engine_cpu_us": median([e["cpu_us"] for e in engine]),
        "engine_cores": median([e["cores"] for e in engine]),
        "broker_cpu_us": median([e["broker_cpu_us"] for e in engine]),
        "ratio": median([e["rate"] / r["rate"] for e, r in zip(engine, raw, strict=True)]),
        "floor_rate": median([f["rate"] for f in results["floor"]]),
        "floor_cpu_us": median([f["cpu_us"] for f in results["floor"]]),
        "floor_broker_cpu_us": median([f["broker_cpu_us"] for f in results["floor"]]),
        "engine_to_floor": median([e["rate"] / f["rate"]
                                   for e, f in zip(engine, results["floor"], strict=False)]),
        "decisions": median([e["decisions"] for e in engine]),
        "latency": _latency_summary(results["latency"], results["args"]["rates"]),
        "latency_split": _latency_summary(results["latency_split"], results["args"]["rates"]),
    }
    return summary


def _latency_summary(runs: list[list[dict[str, float]]], rates: Sequence[float]) -> list[
        dict[str, Any]]:
    out = []
    for i, rate in enumerate(rates if runs else []):
        phase = [run[i] for run in runs]
        entry: dict[str, Any] = {"rate": rate, "achieved": median([x["rate"] for x in phase]),
                 "received": sum(x["received"] for x in phase),
                 "sent": sum(x["sent"] for x in phase),
                 "worker_cores": median([x["worker_cores"] for x in phase]),
                 "p99_runs": [x["p99"] for x in phase]}
        for q in ("p50", "p90", "p99", "max"):
            entry[q] = median([x[q] for x in phase])
        out.append(entry)
    return out


def _print_stages(stages: dict[str, Any]) -> None:
    width = max(len(s) for s in stages["stages"])
    for stage, us in stages["stages"].items():
        print(f"    {stage:<{width}}  {us:7.1f} µs/signal")
    print(f"    {'total':<{width}}  {stages['total']:7.1f} µs/signal "
          f"(median of {stages['repeats']} passes over {stages['signals']:,} signals)")


def print_summary(results: dict[str, Any]) -> None:
    s = results["summary"]
    runs = len(results["engine"])
    line = "-" * 80
    print(line)
    print(f"oO pipeline benchmark — medians of {runs} run(s), "
          f"{results['args']['signals']:,} signals each")
    print(line)
    print(f"{'':32}{'signals/s':>11}{'CPU µs/signal':>15}{'broker µs':>11}{'per run':>11}")
    raws = " ".join(f"{r['rate'] / 1000:.0f}k" for r in results["raw"])
    engines = " ".join(f"{e['rate']:.0f}" for e in results["engine"])
    print(f"{'raw aiokafka consumer (ceiling)':32}{s['raw_rate']:>11,.0f}{s['raw_cpu_us']:>15.1f}"
          f"{s['raw_broker_cpu_us']:>11.1f}   {raws}")
    if results["floor"]:
        floors = " ".join(f"{f['rate']:.0f}" for f in results["floor"])
        print(f"{'Faust floor (1 table update)':32}{s['floor_rate']:>11,.0f}"
              f"{s['floor_cpu_us']:>15.1f}{s['floor_broker_cpu_us']:>11.1f}   {floors}")
    print(f"{'engine (oo worker, RocksDB)':32}{s['engine_rate']:>11,.0f}"
          f"{s['engine_cpu_us']:>15.1f}{s['broker_cpu_us']:>11.1f}   {engines}")
    print(f"engine / raw = {s['ratio']:.4f} ({s['ratio'] * 100:.2f} % of the ceiling; median of "
          f"per-run ratios); worker busy {s['engine_cores']:.2f} cores; "
          f"target ≥ 10,000 signals/s: {'met' if s['engine_rate'] >= 10_000 else 'MISSED'}")
    if results["floor"]:
        print(f"engine / Faust floor = {s['engine_to_floor']:.2f}; Faust floor / raw = "
              f"{s['floor_rate'] / s['raw_rate']:.4f}")
    if "stages" in results:
        st = results["stages"]
        parts = ", ".join(f"{k} {v:.0f}" for k, v in st["stages"].items())
        print(f"CPU µs/signal by stage (in process): {parts}; sum {st['total']:.0f} of the "
              f"worker's {s['engine_cpu_us']:.0f} (the rest: Faust, aiokafka, asyncio, logging)")
    for label, key in (("one worker", "latency"), ("engine + notify workers", "latency_split")):
        for entry in s[key]:
            verdict = ""
            if entry["rate"] == 1000:
                verdict = f"; target p99 < 50 ms: {'met' if entry['p99'] < 50 else 'MISSED'}"
            print(f"signal → decision, {label}, open loop {entry['rate']:,.0f}/s (sent at "
                  f"{entry['achieved']:,.0f}/s): p50 {_ms(entry['p50'])}, p90 "
                  f"{_ms(entry['p90'])}, p99 {_ms(entry['p99'])} (runs: "
                  f"{', '.join(_ms(p) for p in entry['p99_runs'])}), max {_ms(entry['max'])}; "
                  f"{entry['received']:,} of {entry['sent']:,} decisions arrived; workers "
                  f"{entry['worker_cores']:.2f} cores{verdict}")
    print(line)
