"""The Faust floor: the engine's input and one RocksDB table update per signal, nothing else.

`python -m bench.floor` runs a worker built with exactly the `faust.App`
settings of `agents/app.py` (captured, not copied), reading the same signal
topics as the engine, and for each signal doing one table read and one table
write (with its changelog message) and counting it in the same
`oo_signals_folded_total` the benchmark reads. No validation, no fold, no
decision: what is left is the cost of Faust, aiokafka and RocksDB per signal,
the best any agent with one table update per signal can do in this process.
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from agents.counters import Counters
from oo.settings import Settings
from topics.catalog import SIGNALS


class _Captured(Exception):
    pass


def app_settings(settings: Settings) -> dict[str, Any]:
    """The keyword arguments `agents.app.create_app` gives `faust.App`, settings included."""
    captured: dict[str, Any] = {}
    original = faust.App

    class Capture(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            captured.update(kwargs)
            raise _Captured

    faust.App = Capture  # type: ignore[misc]
    try:
        from agents.app import create_app

        create_app(settings)
    except _Captured:
        pass
    finally:
        faust.App = original  # type: ignore[misc]
    return captured


def create_floor_app(settings: Settings) -> faust.App:
    app = faust.App(settings.app_id, **app_settings(settings))
    source = app.topic(*(spec.name for spec in SIGNALS.values()), key_type=bytes,
                       value_type=bytes, key_serializer="raw", value_serializer="raw",
                       partitions=settings.topic_partitions)
    table = app.Table("features", default=None, partitions=settings.topic_partitions,
                      key_type=bytes, value_type=bytes)
    counters = Counters()

    @app.agent(source, name="bench.floor")
    async def floor(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            table.get(message.key)
            table[message.key] = message.value
            counters.inc("oo_signals_folded_total", "topic", message.topic)

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        return web.json({"status": "ready"})

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.text(counters.prometheus(), content_type="text/plain; version=0.0.4")

    return app


def main() -> int:
    import logging

    from faust.worker import Worker

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    app = create_floor_app(settings)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
