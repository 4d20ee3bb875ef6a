"""Per-request observability: trace context, log context, and Prometheus metrics.

Every request gets a `traceparent` (continued from the browser's, or new),
answered in the `traceparent` response header, bound to its log lines and
carried by the events it produces (adapters/outbox.py). Requests are counted
by route, method and status, and timed in a latency histogram, at `/metrics`.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter

from aiohttp import web

from oo import logs
from topics import trace
from web.errors import Handler

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WebMetrics:
    """Request counts and latency histograms, rendered in Prometheus' text format."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency: dict[str, list[int]] = {}  # route -> counts per bucket (+Inf last)
        self.latency_sum: dict[str, float] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        counts = self.latency.setdefault(route, [0] * (len(BUCKETS) + 1))
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds

    def prometheus(self) -> str:
        lines = ["# TYPE oo_web_requests_total counter"]
        for (route, method, status), n in sorted(self.requests.items()):
            lines.append(f'oo_web_requests_total{{route="{route}",method="{method}",'
                         f'status="{status}"}} {n}')
        lines.append("# TYPE oo_web_request_seconds histogram")
        for route, counts in sorted(self.latency.items()):
            total = 0
            for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                total += n
                lines.append(f'oo_web_request_seconds_bucket{{route="{route}",le="{bound}"}} {total}')
            lines.append(f'oo_web_request_seconds_sum{{route="{route}"}} '
                         f"{self.latency_sum[route]:.6f}")
            lines.append(f'oo_web_request_seconds_count{{route="{route}"}} {total}')
        return "\n".join(lines) + "\n"


METRICS = web.AppKey("web_metrics", WebMetrics)


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: trace, log context and metrics around everything else."""
    traceparent = trace.continue_or_start(request.headers.get("traceparent"))
    token = trace.current.set(traceparent)
    started = time.perf_counter()
    status = 500
    try:
        with logs.bound(trace_id=trace.trace_id(traceparent)):
            response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["traceparent"] = traceparent
        return response
    finally:
        trace.current.reset(token)
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        request.app[METRICS].observe(route, request.method, status,
                                     time.perf_counter() - started)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[METRICS].prometheus(), content_type="text/plain")
