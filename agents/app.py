"""The Faust application: configuration, agents and the worker's web pages."""

from __future__ import annotations

from typing import Any

import faust

from agents import deadletters, engine, notify
from agents.counters import Counters
from oo.health import readiness
from oo.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app for `settings` with every agent registered."""
    # One folder per app id and worker (by web port): Faust names table stores by
    # table only, so two apps or two workers on one host must never share a folder.
    datadir = settings.state_dir / "faust" / f"{settings.app_id}-worker-{settings.worker_web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hp}" for hp in settings.kafka_bootstrap],
        store=settings.table_store,
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_port=settings.worker_web_port,
        web_bind="127.0.0.1" if settings.env != "production" else "0.0.0.0",
        web_host="127.0.0.1",
        autodiscover=False,
        producer_acks=-1,
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        # How soon the group notices a worker that died without leaving: its
        # partitions (and their users' timers) wait this long for a new owner.
        broker_session_timeout=10.0 if settings.env != "production" else 30.0,
        broker_heartbeat_interval=2.0 if settings.env != "production" else 3.0,
        # Throughput knobs measured with `make bench` (docs/benchmarks.md, "Faust knobs"):
        # at most 500 records per poll handed to the agents (not everything prefetched),
        # a commit every 10 s rather than 2.8 s (each commit waits for the producer to
        # flush), and 1 MiB producer batches rather than 16 KiB (a full batch blocks the
        # changelog writes until the broker acks it). Still at least once, acks=-1.
        broker_max_poll_records=500,
        broker_commit_interval=10.0,
        broker_commit_every=100_000,
        producer_max_batch_size=1024 * 1024,
    )
    counters = Counters()
    dead = deadletters.DeadLetterSink(app, counters)
    engine.register(app, settings, dead, counters)
    notify.register(app, settings, dead, counters)
    _register_pages(app, settings, counters)
    return app


def _register_pages(app: faust.App, settings: Settings, counters: Counters) -> None:
    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok, body = await readiness(settings.kafka_bootstrap_servers, settings.database_url)
        return web.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        text = counters.prometheus() + consumer_lag(app)
        return web.text(text, content_type="text/plain; version=0.0.4")


def consumer_lag(app: faust.App) -> str:
    """Messages not yet read per assigned partition (end offset − last read), from Faust's monitor."""
    monitor = app.monitor
    ends = getattr(monitor, "tp_end_offsets", None) or {}
    reads = getattr(monitor, "tp_read_offsets", None) or {}
    lines = ["# TYPE oo_consumer_lag gauge"]
    for tp, end in sorted(ends.items()):
        read = reads.get(tp)
        lag = max(0, end - (read + 1)) if read is not None else end
        lines.append(f'oo_consumer_lag{{topic="{tp.topic}",partition="{tp.partition}"}} {lag}')
    return "\n".join(lines) + "\n"
