"""Off-policy estimators: the value of a candidate policy from another policy's logs.

A logged decision point (`LoggedPoint`) holds the action the live (logging)
policy took — a tip, or no tip now — the probability it had of taking it
(`logged_p`), the probability the candidate (target) policy had of the same
action (`target_p`), the target's probability of each arm group
(`target_groups`, for the direct-method term), a few context features for
the reward model, and the reward (`domain.reward`; no tip = 0).

- **IPS** (inverse propensity scoring): mean of w·r with w = target_p /
  logged_p. Unbiased when the logging policy gave every action the target
  takes a probability above zero.
- **SNIPS**: Σw·r / Σw, self-normalised (lower variance, slightly biased),
  over the actions the logger could take (random never stays quiet).
- **DR** (doubly robust): mean of Σ_g π(g)·r̂(g, x) + w·(r − r̂(a, x)), with
  a reward model r̂ fitted on the logs themselves, cross-fitted over people
  (the model that corrects a person's points never saw them). Unbiased if
  either the propensities or the model are right, and with less variance
  than IPS when the model is decent.

All values are per decision point. Intervals resample people (their points
are not independent), seeded. Pure: no IO, no clock.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

QUIET = "quiet"
# Reward model: pseudo-counts shrinking a cell's mean towards its parent's.
MODEL_SHRINK = 5.0


@dataclass(frozen=True, slots=True)
class LoggedPoint:
    """One logged decision point, ready for estimation."""

    user_id: str
    chosen: str  # the action's id: a tip id, or QUIET
    group: str  # its arm group ("quiet" for no tip)
    where: str  # "present" (at the device) or "push"
    logged_p: float
    target_p: float
    target_groups: Mapping[str, float]
    reward: float
    # The target's probability of no tip when the logger never stays quiet (random):
    # that action's reward is known (0), so IPS stays unbiased, but SNIPS must
    # normalise over the actions the logger could take.
    uncovered: float = 0.0


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with a 95% interval (people resampled) and its standard error."""

    value: float
    low: float
    high: float
    se: float

    def contains(self, x: float) -> bool:
        """Whether `x` lies within the interval."""
        return self.low <= x <= self.high

    def as_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return {"value": self.value, "low": self.low, "high": self.high, "se": self.se}


def weight(point: LoggedPoint) -> float:
    """The importance weight target_p / logged_p (0 when the logger could not take it)."""
    return point.target_p / point.logged_p if point.logged_p > 0 else 0.0


def ips_terms(points: Sequence[LoggedPoint]) -> list[float]:
    """Each point's IPS term w·r."""
    return [weight(p) * p.reward for p in points]


RewardModel = Callable[[str, str], float]  # (group, where) -> expected reward


def fit_reward_model(points: Sequence[LoggedPoint]) -> RewardModel:
    """Mean reward by (arm group, where), shrunk to (family, where), to (where), to all.

    No tip is worth 0 by definition and is never fitted.
    """
    sums: dict[tuple[str, ...], list[float]] = {}
    for p in points:
        if p.chosen == QUIET:
            continue
        family = p.group.split(":", 1)[0]
        for key in ((), (p.where,), (p.where, family), (p.where, family, p.group)):
            entry = sums.setdefault(key, [0.0, 0.0])
            entry[0] += 1.0
            entry[1] += p.reward

    def mean(key: tuple[str, ...], parent: float) -> float:
        count, total = sums.get(key, (0.0, 0.0))
        return (parent * MODEL_SHRINK + total) / (MODEL_SHRINK + count)

    cache: dict[tuple[str, str], float] = {}

    def model(group: str, where: str) -> float:
        if group == QUIET:
            return 0.0
        key = (group, where)
        if key not in cache:
            family = group.split(":", 1)[0]
            overall = mean((), 0.0)
            at_where = mean((where,), overall)
            at_family = mean((where, family), at_where)
            cache[key] = mean((where, family, group), at_family)
        return cache[key]

    return model


def _fold_of(user_id: str, folds: int) -> int:
    return int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) % folds


def dr_terms(points: Sequence[LoggedPoint], *, folds: int = 2) -> list[float]:
    """Each point's doubly robust term, the reward model cross-fitted over people."""
    models = [fit_reward_model([p for p in points if _fold_of(p.user_id, folds) != k])
              for k in range(folds)]
    terms = []
    for p in points:
        model = models[_fold_of(p.user_id, folds)]
        direct = sum(share * model(group, p.where) for group, share in p.target_groups.items())
        terms.append(direct + weight(p) * (p.reward - model(p.group, p.where)))
    return terms


def _by_user(points: Sequence[LoggedPoint], terms: Sequence[float],
             denominators: Sequence[float]) -> list[tuple[float, float]]:
    sums: dict[str, list[float]] = {}
    for p, t, d in zip(points, terms, denominators, strict=True):
        entry = sums.setdefault(p.user_id, [0.0, 0.0])
        entry[0] += t
        entry[1] += d
    return [(a, b) for a, b in sums.values()]


def _ratio_interval(clusters: Sequence[tuple[float, float]], draws: int, seed: int) -> Interval:
    def ratio(sample: Sequence[tuple[float, float]]) -> float:
        den = sum(c[1] for c in sample)
        return sum(c[0] for c in sample) / den if den else 0.0

    value = ratio(clusters)
    if len(clusters) < 2:
        return Interval(value, value, value, 0.0)
    rng = random.Random(seed)
    n = len(clusters)
    boots = sorted(ratio([clusters[rng.randrange(n)] for _ in range(n)]) for _ in range(draws))
    mean = sum(boots) / len(boots)
    se = math.sqrt(sum((b - mean) ** 2 for b in boots) / (len(boots) - 1))
    low = boots[int(0.025 * (len(boots) - 1))]
    high = boots[int(math.ceil(0.975 * (len(boots) - 1)))]
    return Interval(value, low, high, se)


def ips(points: Sequence[LoggedPoint], *, draws: int = 1000, seed: int = 0) -> Interval:
    """The IPS estimate of the target's mean reward per decision point."""
    return _ratio_interval(_by_user(points, ips_terms(points), [1.0] * len(points)), draws, seed)


def snips(points: Sequence[LoggedPoint], *, draws: int = 1000, seed: int = 0) -> Interval:
    """The self-normalised IPS estimate: Σw·r / Σw over the actions the logger could take,
    scaled by the target's mean probability of those actions (no tip is worth 0)."""
    covered = 1.0 - sum(p.uncovered for p in points) / len(points) if points else 1.0
    clusters = _by_user(points, [t * covered for t in ips_terms(points)],
                        [weight(p) for p in points])
    return _ratio_interval(clusters, draws, seed)


def dr(points: Sequence[LoggedPoint], *, draws: int = 1000, seed: int = 0,
       folds: int = 2) -> Interval:
    """The doubly robust estimate of the target's mean reward per decision point."""
    return _ratio_interval(_by_user(points, dr_terms(points, folds=folds), [1.0] * len(points)),
                           draws, seed)


def logged_value(points: Sequence[LoggedPoint], *, draws: int = 1000, seed: int = 0) -> Interval:
    """The logging policy's own mean reward per decision point (what it got)."""
    return _ratio_interval(_by_user(points, [p.reward for p in points], [1.0] * len(points)),
                           draws, seed)


def effective_sample_size(points: Sequence[LoggedPoint]) -> float:
    """(Σw)² / Σw²: how many on-policy points the weighted sample is worth."""
    weights = [weight(p) for p in points]
    squares = sum(w * w for w in weights)
    return sum(weights) ** 2 / squares if squares else 0.0
