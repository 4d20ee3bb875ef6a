"""A token-bucket rate limiter keyed by anything (a token id, a person), in process.

Each key has a bucket of `burst` requests refilled at `rate` per second; a
request that finds it empty is refused with the seconds until the next one
fits (for `Retry-After`). The clock is passed in, so the rule is testable
without waiting. Limits are per web process: behind N processes a key gets up
to N times the rate, which is what a limit against bursts needs.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable


class RateLimiter:
    """`take(key, now)` returns 0 when allowed, else the seconds to wait."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def take(self, key: Hashable, now: float, cost: float = 1.0) -> float:
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._remember(key, (tokens - cost, now))
            return 0.0
        self._remember(key, (tokens, now))
        return (cost - tokens) / self.rate

    def wait(self, key: Hashable, now: float, cost: float = 1.0) -> float:
        """The seconds until `cost` fits in `key`'s bucket (0 when it fits now); takes nothing.

        For limits on failures: check before the work, `take` only when it failed.
        """
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    def _remember(self, key: Hashable, bucket: tuple[float, float]) -> None:
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # a forgotten key starts with a full bucket


def retry_after(seconds: float) -> str:
    """The `Retry-After` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
