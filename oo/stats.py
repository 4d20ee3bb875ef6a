"""Small statistics for the evaluation and replay reports (pure Python, seeded).

Outcomes of one person are not independent (they share that person's
taste), so intervals and tests on rates pooled over people resample
*people* (cluster bootstrap) rather than single tips; the plain
two-proportion z-test is reported beside it for reference.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (0, 0 when n is 0)."""
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return (max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale))


def two_sided_p(z: float) -> float:
    """The two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def two_proportion_z(s1: float, n1: float, s2: float, n2: float) -> tuple[float, float]:
    """The pooled two-proportion z statistic of s2/n2 - s1/n1 and its two-sided p-value."""
    if n1 <= 0 or n2 <= 0:
        return (0.0, 1.0)
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (s2 / n2 - s1 / n1) / se
    return (z, two_sided_p(z))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of `values`, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with a 95% interval and a standard error."""

    value: float
    low: float
    high: float
    se: float

    def contains(self, x: float) -> bool:
        """Whether `x` lies in the interval."""
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return {"value": self.value, "low": self.low, "high": self.high, "se": self.se}


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def cluster_ratio(clusters: Sequence[tuple[float, float]], *, draws: int = 2000,
                  seed: int = 0) -> Estimate:
    """Σnum / Σden over clusters (people), with a percentile bootstrap interval over clusters."""
    num = sum(c[0] for c in clusters)
    den = sum(c[1] for c in clusters)
    value = _ratio(num, den)
    if len(clusters) < 2:
        return Estimate(value, value, value, 0.0)
    rng = random.Random(seed)
    n = len(clusters)
    boots = []
    for _ in range(draws):
        sample = [clusters[rng.randrange(n)] for _ in range(n)]
        boots.append(_ratio(sum(c[0] for c in sample), sum(c[1] for c in sample)))
    se = _sd(boots)
    return Estimate(value, percentile(boots, 0.025), percentile(boots, 0.975), se)


def paired_ratio_difference(pairs: Sequence[tuple[tuple[float, float], tuple[float, float]]], *,
                            draws: int = 2000, seed: int = 0) -> tuple[Estimate, float]:
    """Difference B - A of two pooled ratios measured on the same people, resampling people.

    `pairs` holds, per person, ((num_A, den_A), (num_B, den_B)). Returns the
    estimate with its percentile interval, and the two-sided p-value of the
    cluster-robust z statistic (difference / bootstrap standard error).
    """
    def diff(sample: Sequence[tuple[tuple[float, float], tuple[float, float]]]) -> float:
        a = _ratio(sum(p[0][0] for p in sample), sum(p[0][1] for p in sample))
        b = _ratio(sum(p[1][0] for p in sample), sum(p[1][1] for p in sample))
        return b - a

    value = diff(pairs)
    if len(pairs) < 2:
        return Estimate(value, value, value, 0.0), 1.0
    rng = random.Random(seed)
    n = len(pairs)
    boots = [diff([pairs[rng.randrange(n)] for _ in range(n)]) for _ in range(draws)]
    se = _sd(boots)
    p = two_sided_p(value / se) if se > 0 else (0.0 if value else 1.0)
    return Estimate(value, percentile(boots, 0.025), percentile(boots, 0.975), se), p


def _sd(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
