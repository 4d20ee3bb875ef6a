"""Global priors of the bandit: what an answered tip of each arm group is worth, before a
person has said anything.

Global statistics, not per-user state: fitted from logged decisions and
their answers (`fit_priors`; `oo replay --fit-priors PATH` writes them as a
JSON document, `load_priors` reads it). What ships is family-level only
(`FALLBACK`: todo, habit, advice) — no topic is favoured until real answers
say so; `oo evaluate --warmup N` fits topic priors on a separate synthetic
cohort first (docs/learning.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# How many answers a fitted prior is worth to one person (and the fallback).
DEFAULT_WEIGHT = 4.0
# A group mean is shrunk towards its family's with this many pseudo-answers when fitted.
FIT_SHRINK = 10.0
FALLBACK = {"todo": 0.3, "habit": 0.3, "advice": 0.15}
FALLBACK_PUSH_ANSWER = 0.5
FALLBACK_PRESENT_ANSWER = 0.85


class PriorsError(ValueError):
    """A priors document breaks a rule."""


@dataclass(frozen=True)
class Priors:
    """Prior mean reward of an answered tip, per arm group ("todo", "advice:<topic>", ...)."""

    groups: Mapping[str, float] = field(default_factory=lambda: dict(FALLBACK))
    weight: float = DEFAULT_WEIGHT
    source: str = "fallback"
    # The chance a tip is answered at all: pushed at an hour not yet learned, or
    # given while the person is at their device.
    push_answer: float = FALLBACK_PUSH_ANSWER
    present_answer: float = FALLBACK_PRESENT_ANSWER

    def mean(self, group: str) -> float:
        """The prior mean of `group`: its own, else its family's, else the lowest fallback."""
        if group in self.groups:
            return self.groups[group]
        family = group.split(":", 1)[0]
        return self.groups.get(family, FALLBACK.get(family, min(FALLBACK.values())))

    def to_document(self) -> dict[str, Any]:
        """The JSON document (`load_priors` reads it back)."""
        return {"version": 1, "source": self.source, "weight": self.weight,
                "push_answer": round(self.push_answer, 4),
                "present_answer": round(self.present_answer, 4),
                "groups": {g: round(m, 4) for g, m in sorted(self.groups.items())}}


def load_priors(text: str) -> Priors:
    """Priors from a JSON document {"version": 1, "source", "weight", "groups": {group: mean}}."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise PriorsError(f"not JSON: {err}") from err
    if not isinstance(document, dict) or document.get("version") != 1:
        raise PriorsError("priors must be a JSON object with version 1")
    groups = document.get("groups")
    if not isinstance(groups, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and -1.0 <= v <= 1.0
            for k, v in groups.items()):
        raise PriorsError("groups must map arm groups to mean rewards in [-1, 1]")
    weight = document.get("weight", DEFAULT_WEIGHT)
    if not isinstance(weight, (int, float)) or not 0 < weight <= 100:
        raise PriorsError("weight must be a number in (0, 100]")
    answers = [document.get(k, d) for k, d in (("push_answer", FALLBACK_PUSH_ANSWER),
                                                ("present_answer", FALLBACK_PRESENT_ANSWER))]
    if not all(isinstance(a, (int, float)) and 0.01 <= a <= 0.99 for a in answers):
        raise PriorsError("push_answer and present_answer must be numbers in [0.01, 0.99]")
    return Priors({k: float(v) for k, v in groups.items()}, float(weight),
                  str(document.get("source", "")), float(answers[0]), float(answers[1]))


DEFAULT_PRIORS = Priors()


def fit_priors(points: Iterable[Mapping[str, Any]], *, source: str,
               weight: float = DEFAULT_WEIGHT) -> Priors:
    """Priors from logged decision points with their outcome (see `oo.replay`).

    A family's prior is the mean reward of its answered tips (ignored ones
    tell about timing, not content); a group's is its mean shrunk towards
    its family's by FIT_SHRINK pseudo-answers (a topic answered ten times
    moves halfway). The answer chances are the shares of tips not ignored,
    pushed or given at the device (bucket "p").
    """
    sums: dict[str, list[float]] = {}
    timing = {"push": [0.0, 0.0], "present": [0.0, 0.0]}
    for point in points:
        reaction = point.get("reaction")
        if point.get("chosen") == "quiet" or reaction is None or point.get("reward") is None:
            continue
        where = timing["present" if point.get("point", {}).get("bucket") == "p" else "push"]
        where[0] += 1.0
        if reaction == "ignored":
            continue
        where[1] += 1.0
        group = str(point["group"])
        for key in {group, group.split(":", 1)[0]}:
            entry = sums.setdefault(key, [0.0, 0.0])
            entry[0] += 1.0
            entry[1] += float(point["reward"])
    groups: dict[str, float] = {}
    for key, (count, total) in sums.items():
        if ":" not in key:
            groups[key] = total / count
    for key, (count, total) in sums.items():
        if ":" in key:
            family_mean = groups[key.split(":", 1)[0]]
            groups[key] = (family_mean * FIT_SHRINK + total) / (FIT_SHRINK + count)

    def share(counts: list[float], fallback: float) -> float:
        # Shrunk by two pseudo-tips, clipped to what load_priors accepts.
        return min(0.99, max(0.01, (counts[1] + 2 * fallback) / (counts[0] + 2)))

    return Priors(groups, weight, source, share(timing["push"], FALLBACK_PUSH_ANSWER),
                  share(timing["present"], FALLBACK_PRESENT_ANSWER))
