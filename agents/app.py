"""The Faust application: configuration, agents and the worker's web pages.

The worker's web server serves only `/health`, `/ready` and `/metrics`
(oo/exposure.py says who may read which). Faust's built-in views are off:
`/table/<name>/<key>/` would show any person's whole feature state to anyone
who reaches the port, `/router/` the cluster's layout, `/` (in debug) and
`/graph` the worker's internals. `table_route` (the only user of `/router`)
is not used: the web app reads PostgreSQL, never the worker's tables.
"""

from __future__ import annotations

from typing import Any

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent
from mode.utils.times import want_seconds

from agents import deadletters, engine, notify
from agents.counters import Counters
from oo.exposure import SERVER, metrics_refusal
from oo.health import readiness
from oo.settings import Settings
from topics.admin import InternalTopic


class ResumeOnceFlowControl(FlowControlEvent):
    """Flow control whose `resume()` clears the stream queues only when flow was suspended.

    Faust's FlowControlEvent.resume() always clears every stream and changelog
    queue. After a rebalance the table recovery calls it again once the stream
    partitions were resumed and sought to their committed offsets
    (Recovery.on_recovery_completed, and after the standby partitions start):
    events of the new generation, already fetched, are then thrown away while
    the consumer's position stays past them. Unacked, they are not processed
    until the next rebalance re-reads them (an order slip), and one at the head
    of a partition is committed past (Consumer._new_offset tolerates a gap of
    one after the committed offset), i.e. lost. The stale events of the previous
    generation are still cleared when the rebalance starts (App._on_partitions_revoked)
    and on the first resume after it.
    """

    def resume(self) -> None:
        suspended = not self.is_active()
        self._suspend.clear()
        self._resume.set()
        if suspended:
            self.clear()


class App(faust.App):
    """faust.App with two fixes for records skipped around rebalances.

    See ResumeOnceFlowControl and _rewind_uncommitted (docs/reliability.md).
    """

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return ResumeOnceFlowControl(loop=self.loop)

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        _rewind_uncommitted(self, consumer)
        return consumer

    def on_webserver_init(self, web: Any) -> None:
        """Answer with a `Server` header without versions, and never let a proxy cache a page."""
        web_app = getattr(web, "web_app", None)  # the aiohttp driver's Application
        if web_app is not None:
            web_app.on_response_prepare.append(_plain_headers)


async def _plain_headers(request: Any, response: Any) -> None:
    # on_response_prepare runs before aiohttp adds its own `Server: Python/… aiohttp/…`.
    response.headers["Server"] = SERVER
    response.headers.setdefault("Cache-Control", "no-store")


def _rewind_uncommitted(app: faust.App, consumer: Any) -> None:
    """Make "seek to committed" also rewind input partitions that have no committed offset.

    Faust calls Consumer.perform_seek after a rebalance and whenever a fetch
    returns while the flow is stopped, discarding what was fetched ("Seek back
    to committed offsets"). aiokafka's seek_to_committed only seeks partitions
    whose committed offset is above 0, so a partition nothing was committed for
    yet (the first commit interval of a new group, or after a kill) keeps its
    advanced position: the discarded records are skipped. They are read again
    only when a later owner starts from the earliest offset (an order slip), or
    never, once an offset after them is committed (a loss). Such partitions go
    back to their beginning, as auto_offset_reset="earliest" does for a new owner.
    """
    seek_to_committed = consumer.seek_to_committed

    async def seek_to_committed_or_beginning() -> Any:
        committed = await seek_to_committed()
        changelogs = app.tables.changelog_topics
        uncommitted = [tp for tp, offset in committed.items()
                       if not offset and tp.topic not in changelogs]
        if uncommitted:
            await consumer._thread.seek_to_beginning(*uncommitted)
        return committed

    consumer.seek_to_committed = seek_to_committed_or_beginning


ROLES = ("all", "engine", "notify")


def app_id_for(settings: Settings, role: str = "all") -> str:
    """The Faust app id (consumer group, changelog prefix) of a worker running `role`.

    The notifier alone is an app of its own (`<OO_APP_ID>-notify`): a Faust group's
    members must all run the same agents. "all" and "engine" share OO_APP_ID, so a
    deployment that splits keeps the engine's tables and offsets.
    """
    if role not in ROLES:
        raise ValueError(f"unknown worker role {role!r}; one of {', '.join(ROLES)}")
    return f"{settings.app_id}-notify" if role == "notify" else settings.app_id


def create_app(settings: Settings, role: str = "all") -> faust.App:
    """Build the Faust app for `settings` with the agents of `role` registered.

    "all" runs every agent in one process; "engine" (signals, timers, feedback →
    state and decisions) and "notify" (decisions → pushes) split them in two
    processes, so the engine's core is not shared with the notifier's
    (docs/pipeline.md, "Processes").
    """
    app_id = app_id_for(settings, role)
    # One folder per app id and worker (by web port): Faust names table stores by
    # table only, so two apps or two workers on one host must never share a folder.
    datadir = settings.state_dir / "faust" / f"{app_id}-worker-{settings.worker_web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = App(
        app_id,
        broker=[f"kafka://{hp}" for hp in settings.kafka_bootstrap],
        store=settings.table_store,
        datadir=str(datadir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_port=settings.worker_web_port,
        # Loopback unless OO_WORKER_WEB_HOST names an internal interface (for a health
        # check or a Prometheus on another host): nothing here is for the public.
        web_bind=settings.worker_web_host,
        web_host=_advertised(settings.worker_web_host),
        # Faust's own views, each off by its own setting (faust/web/base.py BLUEPRINT_FLAGS):
        # tables (any key's value: people's state), router (cluster layout), stats and
        # graph (internals), performance metrics (unauthenticated). See the docstring.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
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
    if role in ("all", "engine"):
        engine.register(app, settings, dead, counters)
    if role in ("all", "notify"):
        notify.register(app, settings, dead, counters)
    _register_pages(app, settings, counters)
    return app


def _advertised(bind: str) -> str:
    """The host Faust names this worker by: the bound address, or loopback for a wildcard."""
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


def internal_topics(app: faust.App) -> list[InternalTopic]:
    """The topics the worker would declare itself: table changelogs and the leader topic.

    Names, partition counts and configs as Faust declares them
    (faust.topics.Topic.declare), so Faust finds them and skips its own creation.
    """
    conf = app.conf
    topics = []
    for table in app.tables.values():
        changelog = table.changelog_topic
        cleanup = [flag for flag, on in (("compact", changelog.compacting),
                                         ("delete", changelog.deleting)) if on]
        configs = {"cleanup.policy": ",".join(cleanup)}
        if changelog.retention:
            configs["retention.ms"] = str(int(want_seconds(changelog.retention) * 1000))
        configs.update({k: str(v) for k, v in (changelog.config or {}).items()})
        topics.append(InternalTopic(
            changelog.get_topic_name(), changelog.partitions or conf.topic_partitions,
            changelog.replicas or conf.topic_replication_factor,
            {k: v for k, v in configs.items() if v}))
    topics.append(InternalTopic(f"{conf.id}-__assignor-__leader", 1,
                                conf.topic_replication_factor))
    return topics


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
        refused = metrics_refusal(settings, request.headers.get("Authorization"),
                                  request.remote)
        if refused is not None:
            status, message = refused
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return web.json({"error": message, "status": status}, status=status,
                            headers=headers)
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
