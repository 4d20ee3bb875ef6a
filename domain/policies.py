"""Which candidate to say: policies behind one interface, in a registry keyed by name.

A policy picks one tip among the candidates and reports the probability it
had of picking it (the propensity), which is what lets learned policies be
evaluated offline from logged decisions. Policies are deterministic given the
seed, so a redelivered trigger reproduces the same pick.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from domain.candidates import Tip
from domain.features import UserFeatures
from domain.moments import Moment


@dataclass(frozen=True, slots=True)
class Pick:
    """The chosen tip, the probability the policy had of choosing it, and every candidate's score."""

    tip: Tip
    propensity: float
    scores: Mapping[str, float]


class Policy(Protocol):
    """Picks one tip among candidates; the same seed gives the same pick."""

    @property
    def name(self) -> str:
        """The registry key, also written into every decision."""
        ...

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Moment,
             seed: int) -> Pick | None:
        """The pick, or None when there is nothing to pick from."""
        ...


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
    """v0: uniform over the candidates, propensity 1/n; the seed fixes the draw."""

    name: str = "random"

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Moment,
             seed: int) -> Pick | None:
        """A uniformly random candidate, drawn from a generator seeded with `seed`."""
        if not candidates:
            return None
        share = 1.0 / len(candidates)
        chosen = candidates[random.Random(seed).randrange(len(candidates))]
        return Pick(chosen, share, {tip.id: share for tip in candidates})


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


register(RandomPolicy())
