"""Hidden preferences of synthetic people: how each one reacts to a tip, and what it is worth.

The simulator (`oo.simulator`) gives a person a routine and the signals it
makes; a `Taste` is what oO is meant to discover and never sees:

- **what they like**: a chance of accepting, once they look at the tip, per
  arm group — todos, habits, and each advice topic: how much they like
  advice in general (some people barely), more for a few favourite topics
  (drawn by a popularity shared by everyone);
- **when they answer**: at their device (they just opened the app or logged a
  mood) they nearly always look; a pushed tip is looked at with a chance
  that depends on the local hour of week — high in two or three windows of
  their day (shifted later at weekends), low elsewhere;
- **fatigue**: every tip they received weighs on them (halving daily) and
  lowers acceptance and raises dismissals; the same tip again soon is
  accepted less (recovering over two days).

`react` draws the reaction to a tip from a seeded generator; `expected_reward`
is its exact expectation under `domain.reward`, which the evaluation uses
for regret. Neither is visible to the policies.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from domain.catalogue import default_catalogue
from domain.reward import REWARD

LOAD_HALF_LIFE_S = 24 * 3600
REPEAT_RECOVERY_S = 48 * 3600
REPEAT_DROP = 0.7
# Of the tips looked at and not accepted: how they split, before fatigue.
SAVE_SHARE, SNOOZE_SHARE = 0.15, 0.3
MAX_REACTION_S = 3 * 3600  # a looked-at tip is answered within three hours (tips live four)


def topics() -> tuple[str, ...]:
    """The advice topics of the shipped catalogue, sorted."""
    return tuple(sorted({a.topic for a in default_catalogue().advices}))


WORLD = "oo-world-1"


def topic_popularity(world: str = WORLD) -> dict[str, float]:
    """How popular each advice topic is among synthetic people (a property of the world).

    The same for every seed: a seed draws other people from the same world, so
    what one cohort's answers teach about topics (global priors) carries over
    to the next, as it would between real cohorts.
    """
    rng = random.Random(f"{world}:popularity")
    return {t: rng.gammavariate(0.8, 1.0) for t in topics()}


@dataclass(frozen=True)
class Taste:
    """One synthetic person's hidden preferences."""

    likes: Mapping[str, float]  # P(accept | looked at), per arm group
    push_answer: tuple[float, ...]  # P(looking at a pushed tip), per local hour of week (168)
    present_answer: float  # P(looking at a tip while at the device)
    fatigue: float  # how much the recent load weighs on acceptance

    @classmethod
    def generate(cls, rng: random.Random, popularity: Mapping[str, float],
                 wake_minute: int) -> Taste:
        """A random taste; `wake_minute` anchors the morning window of their day."""
        liked = set()
        names, weights = list(popularity), list(popularity.values())
        for _ in range(rng.choice((1, 2, 2, 3, 3, 4))):
            liked.add(rng.choices(names, weights)[0])
        # Some people like advice in general, some barely; everyone has favourite topics.
        advice = rng.uniform(0.03, 0.5)
        likes = {f"advice:{t}": min(0.95, advice + rng.uniform(0.3, 0.5)) if t in liked
                 else advice * rng.uniform(0.5, 1.2) for t in names}
        likes["todo"] = rng.uniform(0.15, 0.75)
        likes["habit"] = rng.uniform(0.15, 0.75)
        windows = [wake_minute // 60 + rng.choice((0, 1)), rng.choice((12, 13)),
                   rng.choice((18, 19, 20, 21))]
        windows = rng.sample(windows, rng.choice((2, 3)))
        width = rng.choice((1, 2, 2, 3))
        high, low = rng.uniform(0.7, 0.95), rng.uniform(0.05, 0.3)
        weekend_shift = rng.choice((1, 2))
        push = []
        for how in range(168):
            day, hour = divmod(how, 24)
            shift = weekend_shift if day >= 5 else 0
            inside = any(0 <= hour - (w + shift) < width for w in windows)
            push.append(high if inside else low)
        return cls(likes, tuple(push), rng.uniform(0.85, 0.98), rng.uniform(0.05, 0.25))


@dataclass
class Memory:
    """What the person remembers of tips received: their load, and when each tip came last."""

    load: float = 0.0
    load_at: float = 0.0
    last_given: dict[str, float] = field(default_factory=dict)

    def load_at_time(self, at: float) -> float:
        """The load at `at`: every tip adds 1, halving every LOAD_HALF_LIFE_S."""
        return self.load * 0.5 ** (max(0.0, at - self.load_at) / LOAD_HALF_LIFE_S)

    def received(self, tip_id: str, at: float) -> None:
        """A tip reached the person at `at`."""
        self.load = self.load_at_time(at) + 1.0
        self.load_at = at
        self.last_given[tip_id] = at


@dataclass(frozen=True, slots=True)
class Chances:
    """The chances of each outcome of one tip."""

    look: float
    accept: float  # given looked at
    dismiss: float  # given looked at and not accepted
    save: float
    snooze: float

    def expected_reward(self, kind: str) -> float:
        """The expected graded reward (domain.reward) of the tip."""
        accepted = REWARD["done" if kind == "todo" else "ack"]
        declined = (self.dismiss * REWARD["dismiss"] + self.save * REWARD["save"]
                    + self.snooze * REWARD["snooze"])
        looked = self.accept * accepted + (1.0 - self.accept) * declined
        return self.look * looked + (1.0 - self.look) * REWARD["ignored"]


def chances(taste: Taste, memory: Memory, *, group: str, tip_id: str, moment: str,
            present: bool, local: datetime, at: float) -> Chances:
    """The chances of each outcome of tip `tip_id` (arm group `group`) given at `at`."""
    look = taste.present_answer if present else taste.push_answer[local.weekday() * 24 + local.hour]
    like = taste.likes.get(group, 0.1)
    if (group == "todo" and moment == "todo_due_soon") or (group == "habit"
                                                           and moment == "habit_window"):
        like = min(0.95, like * 1.3)  # the right tip at its own moment
    weight = 1.0 / (1.0 + taste.fatigue * memory.load_at_time(at))
    last = memory.last_given.get(tip_id)
    repeat = 1.0 if last is None else 1.0 - REPEAT_DROP * 0.5 ** ((at - last) / REPEAT_RECOVERY_S)
    accept = like * weight * repeat
    tired = 1.0 - weight
    dismiss = min(0.9, 1.0 - SAVE_SHARE - SNOOZE_SHARE + 0.4 * tired)
    rest = 1.0 - dismiss
    save = rest * SAVE_SHARE / (SAVE_SHARE + SNOOZE_SHARE)
    return Chances(look, accept, dismiss, save, rest - save)


def react(ch: Chances, kind: str, rng: random.Random) -> tuple[str, float] | None:
    """The reaction and its delay in seconds, or None when the tip is never looked at."""
    if rng.random() >= ch.look:
        return None
    delay = rng.uniform(60.0, MAX_REACTION_S) if rng.random() < 0.5 else \
        rng.uniform(60.0, 20 * 60.0)
    if rng.random() < ch.accept:
        return ("done" if kind == "todo" else "ack"), delay
    roll = rng.random()
    if roll < ch.dismiss:
        return "dismiss", delay
    if roll < ch.dismiss + ch.save:
        return "save", delay
    return "snooze", delay


def dwell_ms(rng: random.Random, reaction: str) -> int:
    """How long the tip was on screen before the answer (for product metrics)."""
    base = 4000 if reaction in ("done", "ack", "save") else 1500
    return int(base * math.exp(rng.gauss(0.0, 0.6)))
