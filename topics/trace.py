"""W3C trace context (`traceparent`) carried from a web request through Kafka headers.

A request that arrives with a valid `traceparent` continues that trace; any
other starts a new one. The current one lives in a context variable, so the
outbox (adapters/outbox.py) can put it on the events a request produces, and
the engine copies it from a signal onto the decision it makes.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
current: ContextVar[str | None] = ContextVar("oo_traceparent", default=None)


def continue_or_start(incoming: str | None) -> str:
    """A traceparent for this hop: the incoming trace with a new span id, or a new trace."""
    match = _FORMAT.match((incoming or "").strip().lower())
    trace_id = match.group(1) if match and set(match.group(1)) != {"0"} else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a valid traceparent, else None."""
    match = _FORMAT.match((traceparent or "").strip().lower())
    return match.group(1) if match else None
