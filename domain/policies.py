"""Which candidate to say, or none: policies behind one interface, in a registry keyed by name.

A policy picks one tip among the candidates, or — if it can — *no tip now*,
and reports the probability it had of that action (the propensity) and of
every other one (`Pick.scores`), which is what lets policies be evaluated
offline from logged decisions. Policies are deterministic given the seed, so
a redelivered trigger reproduces the same pick.

Registered: `random` (v0: uniform over the candidates, at the fixed
moments), `bandit` (Thompson sampling over the tips and no tip now, with
learned timing; `domain.bandit`), and `ab` (a per-user assignment: half the
people get `random`, half `bandit`, by a stable hash of their id).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from domain import bandit
from domain.bandit import QUIET
from domain.candidates import Tip
from domain.features import UserFeatures
from domain.learning import Learned
from domain.moments import Moment
from domain.priors import DEFAULT_PRIORS, Priors

__all__ = ["QUIET", "Assignment", "BanditPolicy", "Pick", "Policy", "PolicyRegistry",
           "RandomPolicy", "UnknownPolicy", "get", "names", "register", "resolve",
           "uses_learned_timing"]


@dataclass(frozen=True, slots=True)
class Pick:
    """The chosen action — a tip, or None for *no tip now* — with its probability.

    `scores` is the policy's probability of every action it could take: each
    candidate's tip id, and QUIET for no tip now (absent when it could not).
    """

    tip: Tip | None
    propensity: float
    scores: Mapping[str, float]

    @property
    def action(self) -> str:
        """The chosen action's id: the tip id, or QUIET."""
        return self.tip.id if self.tip is not None else QUIET


class Policy(Protocol):
    """Picks one tip among candidates (or none); the same seed gives the same pick.

    A policy may also have `learned_timing = True`: decisions then hold its
    tips back at the moments the person does not answer
    (`domain.guards.learned_timing`).
    """

    @property
    def name(self) -> str:
        """The registry key, also written into every decision."""
        ...

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Moment,
             seed: int, at: float) -> Pick | None:
        """The pick at `at` (epoch seconds), or None when there is nothing to pick from."""
        ...


def uses_learned_timing(policy: Policy) -> bool:
    """Whether decisions hold `policy`'s tips back by the person's learned timing."""
    return bool(getattr(policy, "learned_timing", False))


class UnknownPolicy(KeyError):
    """No policy is registered under that name."""


class PolicyRegistry:
    """Policies by name."""

    def __init__(self) -> None:
        self._policies: dict[str, Policy] = {}

    def register(self, policy: Policy, *, replace: bool = False) -> None:
        """Add `policy` under `policy.name`; a taken name needs `replace=True`."""
        if policy.name in self._policies and not replace:
            raise ValueError(f"policy {policy.name!r} is already registered")
        self._policies[policy.name] = policy

    def get(self, name: str) -> Policy:
        """The policy called `name`; UnknownPolicy (a KeyError) names the known ones."""
        try:
            return self._policies[name]
        except KeyError:
            raise UnknownPolicy(f"no policy {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._policies))


@dataclass(frozen=True, slots=True)
class RandomPolicy:
    """v0: uniform over the candidates, propensity 1/n; the seed fixes the draw.

    Never stays quiet. `learned_timing=True` makes the ablation "random tips at
    learned moments" (used by `oo evaluate`).
    """

    name: str = "random"
    learned_timing: bool = False

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Moment,
             seed: int, at: float | None = None) -> Pick | None:
        """A uniformly random candidate, drawn from a generator seeded with `seed`."""
        if not candidates:
            return None
        share = 1.0 / len(candidates)
        chosen = candidates[random.Random(seed).randrange(len(candidates))]
        return Pick(chosen, share, {tip.id: share for tip in candidates})


@dataclass(frozen=True, slots=True)
class BanditPolicy:
    """Thompson sampling over the candidates and no tip now (see `domain.bandit`).

    `learned_timing` (default on) also holds its tips back at the hours of
    week the person does not answer.
    """

    name: str = "bandit"
    learned_timing: bool = True
    draws: int = bandit.DRAWS
    explore: float = bandit.EXPLORE
    priors: Priors = DEFAULT_PRIORS
    # False: decide from the global priors only, ignoring what the person taught
    # (an ablation; its knowledge does not depend on which policy was live).
    personal: bool = True

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Moment,
             seed: int, at: float | None = None) -> Pick | None:
        """A draw from Thompson sampling's action probabilities (QUIET is a possible pick)."""
        if not candidates:
            return None
        when = float(at if at is not None else features.last_activity_at or 0)
        if not self.personal:
            features = dataclasses.replace(features, learned=Learned())
        rng = random.Random(seed)
        dist = bandit.distribution(features, candidates, moment.name, when, rng,
                                   draws=self.draws, explore=self.explore, priors=self.priors)
        index = bandit.draw(dist, rng)
        scores = dict(zip(dist.actions, dist.probabilities, strict=True))
        tip = None if index == 0 else candidates[index - 1]
        return Pick(tip, dist.probabilities[index], scores)


@dataclass(frozen=True)
class Assignment:
    """A per-user split between registered policies: an A/B test, reproducible.

    Each person is assigned by a stable hash of `salt` and their user id, so
    the same person always gets the same policy (across workers and
    restarts), and a new salt reshuffles. `arms` are (policy name, share);
    shares are normalised. Decisions name the assigned policy, and carry the
    assignment's name in their context snapshot.
    """

    name: str
    arms: tuple[tuple[str, float], ...]
    salt: str

    def assign(self, user_id: str) -> str:
        """The name of the policy `user_id` is assigned to."""
        digest = hashlib.sha256(f"{self.salt}\x1f{user_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2 ** 64
        total = sum(share for _, share in self.arms)
        running = 0.0
        for name, share in self.arms:
            running += share / total
            if point < running:
                return name
        return self.arms[-1][0]

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Moment,
             seed: int, at: float | None = None) -> Pick | None:
        """The pick of the assigned policy (prefer `resolve`, which also names it)."""
        chosen = REGISTRY.get(self.assign(features.user_id))
        return chosen.pick(features, candidates, moment, seed, at if at is not None else 0.0)


REGISTRY = PolicyRegistry()


def register(policy: Policy, *, replace: bool = False) -> None:
    """Register `policy` in the default registry."""
    REGISTRY.register(policy, replace=replace)


def get(name: str) -> Policy:
    """The policy called `name` in the default registry."""
    return REGISTRY.get(name)


def names() -> tuple[str, ...]:
    """Names in the default registry, sorted."""
    return REGISTRY.names()


def resolve(policy: Policy, user_id: str, registry: PolicyRegistry = REGISTRY) -> Policy:
    """The policy that decides for `user_id`: `policy` itself, or the one an assignment gives."""
    assign = getattr(policy, "assign", None)
    if assign is None:
        return policy
    return resolve(registry.get(assign(user_id)), user_id, registry)


register(RandomPolicy())
register(BanditPolicy())
register(Assignment("ab", (("random", 0.5), ("bandit", 0.5)), salt="oo-ab-1"))
