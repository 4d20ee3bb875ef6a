"""Logging for every oO process: JSON lines in production, readable text elsewhere.

Both go through the standard `logging` module (so Faust's, aiohttp's and our
own loggers look alike) with structlog's formatter. Context bound with
`bind()` — `user_id`, `event_id`, `decision_id`, `trace_id` — is added to
every line logged in the same task until it is cleared, so one person's path
through the system can be followed across processes by its trace id.
Never bind or log secrets (tokens, keys, cookies): only ids.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from oo.settings import Settings

_PRE_CHAIN: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for `settings` (also handed to the Faust worker)."""
    json_lines = settings.env == "production"
    renderer: Any = (structlog.processors.JSONRenderer() if json_lines
                     else structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0))
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"oo": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": _PRE_CHAIN,
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                           structlog.processors.format_exc_info, renderer],
        }},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "oo",
                                 "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["default"], "level": settings.log_level.upper()},
    }


def configure(settings: Settings) -> None:
    """Set up logging once, at process start."""
    logging.config.dictConfig(logging_config(settings))
    structlog.configure(
        processors=[*_PRE_CHAIN, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


def bind(**ids: str | None) -> None:
    """Add ids to every following log line of this task (None values are skipped)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """`bind` for the duration of a block, then restore what was bound before."""
    given = {k: v for k, v in ids.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**given):
        yield
