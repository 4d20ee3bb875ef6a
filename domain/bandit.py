"""The learned policy's model: Thompson sampling over "which tip" and "a tip now at all".

At a decision point the actions are every candidate tip and *no tip now*
(worth exactly 0, `domain.reward`). The value of giving tip `a` now is

    n * m(a)  +  (1 - n) * REWARD["ignored"]  -  burden price

- `n`, the chance the person answers now, is a Beta posterior from their
  timing statistics (the hour of week for a push, or being at their device;
  `Learned.answer_odds`);
- `m(a)`, the reward of the tip once answered, is a Normal posterior of its
  arm group (`todo`, `habit`, `advice:<topic>`): the person's own answers
  shrunk towards a global prior (`domain.priors`) moved by how they answer
  the group's family (all their advices) — minus a **recency penalty** for a tip given recently,
  which recovers with time (REPEAT_PENALTY halving every REPEAT_HALF_LIFE_S, the
  shape recovering bandits give a recently played arm);
- the **burden price** is what interrupting costs on top: zero for a rested
  person, BURDEN_PRICE once their burden budget (the fatigue meter, which a
  dismissal fills more than anything but an ignored tip, and silence never
  fills) is spent.

Thompson sampling draws `n` and each group's `m` from their posteriors and
takes the best action (a uniform choice among equals); DRAWS such draws give each action's probability, mixed with
EXPLORE of uniform exploration so that every action keeps a probability
above zero. The action is then drawn from those probabilities, which makes
them the exact propensities (off-policy evaluation needs them). Everything is
seeded by the caller: the same seed gives the same draws.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from domain.candidates import Tip
from domain.features import ADVICE_TIP_PREFIX, HABIT_TIP_PREFIX, TODO_TIP_PREFIX, UserFeatures
from domain.guards import FATIGUE_LIMIT
from domain.learning import Learned, Odds, decay, timing_bucket
from domain.priors import DEFAULT_PRIORS, Priors
from domain.reward import REWARD

QUIET = "quiet"  # the id of the "no tip now" action
FAMILY_PRIOR_WEIGHT = 2.0
REWARD_SD = 0.5  # spread of one answered tip's reward around its group's mean
REPEAT_PENALTY = 0.5
REPEAT_HALF_LIFE_S = 24 * 3600
BURDEN_PRICE = 0.25
DRAWS = 32
EXPLORE = 0.02
# Posterior spread used when sampling (1 = textbook Thompson sampling). Below 1 explores
# less: with tens of groups and a few tips a day, sampling every group's full
# uncertainty keeps trying groups long after they stopped being promising.
SPREAD = 1.0


def arm_group(tip: Tip) -> str:
    """The arm group of `tip`: "todo", "habit", or "advice:<topic>" ("advice" without topic)."""
    if tip.id.startswith(HABIT_TIP_PREFIX):
        return "habit"
    if tip.id.startswith(TODO_TIP_PREFIX):
        return "todo"
    if tip.id.startswith(ADVICE_TIP_PREFIX) or tip.kind == "advice":
        topic = tip.meta.get("topic") if tip.meta else None
        return f"advice:{topic}" if topic else "advice"
    return tip.kind


def _family(group: str) -> str:
    return group.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Belief:
    """A Normal posterior of the reward of an answered tip of one group."""

    mean: float
    sd: float


def content_belief(learned: Learned, group: str, at: float,
                   priors: Priors = DEFAULT_PRIORS) -> Belief:
    """The posterior of the reward of an answered tip of `group`, from the person's answers.

    The prior of a group is the global prior (`domain.priors`) moved by how
    this person answers its family in general (their advices may all do
    better, or worse, than everyone's): a random-effects shrinkage with
    FAMILY_PRIOR_WEIGHT pseudo-answers. The person's own answers to the group
    then count one each against the prior's `priors.weight`.
    """
    family = _family(group)
    prior = priors.mean(group)
    tallies = learned.tallies()
    family_keys = [k for k in tallies if _family(k) == family]
    if family_keys:
        factor = decay(learned.updated_at, at)
        answers = sum(tallies[k].answers for k in family_keys) * factor
        surprise = sum(tallies[k].total - tallies[k].answers * priors.mean(k)
                       for k in family_keys) * factor
        prior += surprise / (FAMILY_PRIOR_WEIGHT + answers)
    own = learned.tally(group, at)
    weight = priors.weight + own.answers
    return Belief((prior * priors.weight + own.total) / weight, REWARD_SD / math.sqrt(weight))


def repeat_penalty(features: UserFeatures, tip_id: str, at: float) -> float:
    """How much giving `tip_id` again now costs: REPEAT_PENALTY just after, recovering by half
    every REPEAT_HALF_LIFE_S since it was last given."""
    last = max((g.at for g in features.recent_tips if g.tip_id == tip_id), default=None)
    if last is None:
        return 0.0
    return REPEAT_PENALTY * 0.5 ** (max(0.0, at - last) / REPEAT_HALF_LIFE_S)


def burden_price(features: UserFeatures, at: float) -> float:
    """The extra cost of interrupting now: grows with the share of the burden budget spent."""
    spent = min(1.0, features.fatigue_level(at) / FATIGUE_LIMIT)
    return BURDEN_PRICE * spent


def answer_odds(features: UserFeatures, moment: str, at: float,
                priors: Priors = DEFAULT_PRIORS) -> Odds:
    """The posterior chance that the person answers a tip given at `moment` now."""
    wall = features.local_time(at)
    return features.learned.answer_odds(timing_bucket(moment, wall.weekday(), wall.hour), at,
                                        push_prior=priors.push_answer,
                                        present_prior=priors.present_answer)


@dataclass(frozen=True, slots=True)
class Distribution:
    """The bandit's probability of each action (QUIET first, then the candidates in order),
    and the posterior-mean value of each, for explanations."""

    actions: tuple[str, ...]
    probabilities: tuple[float, ...]
    expected: tuple[float, ...]

    def probability(self, action: str) -> float:
        """The probability of `action` (0 for an unknown one)."""
        try:
            return self.probabilities[self.actions.index(action)]
        except ValueError:
            return 0.0


def distribution(features: UserFeatures, candidates: Sequence[Tip], moment: str, at: float,
                 rng: random.Random, *, draws: int = DRAWS, explore: float = EXPLORE,
                 spread: float = SPREAD, priors: Priors = DEFAULT_PRIORS) -> Distribution:
    """Thompson sampling's action probabilities at this decision point, from `draws` draws.

    Deterministic for the state of `rng`; each action's probability is at
    least `explore / (len(candidates) + 1)`.
    """
    odds = answer_odds(features, moment, at, priors)
    ignored = REWARD["ignored"]
    price = burden_price(features, at)
    groups = [arm_group(tip) for tip in candidates]
    beliefs = {g: content_belief(features.learned, g, at, priors) for g in dict.fromkeys(groups)}
    penalties = [repeat_penalty(features, tip.id, at) for tip in candidates]
    wins = [0.0] * (len(candidates) + 1)
    for _ in range(draws):
        # One draw per parameter: the answer chance, and each group's mean (tips of
        # a group share it; drawing per tip would favour big groups).
        n = rng.betavariate(odds.alpha, odds.beta)
        sampled = {g: rng.gauss(b.mean, b.sd * spread) for g, b in beliefs.items()}
        values = [n * (sampled[g] - penalty) + (1.0 - n) * ignored - price
                  for g, penalty in zip(groups, penalties, strict=True)]
        best_value = max(values)
        if best_value <= 0.0:
            wins[0] += 1.0  # no tip now is worth 0
            continue
        tied = [i for i, v in enumerate(values, start=1) if v >= best_value - 1e-12]
        for i in tied:  # a uniform choice among equals
            wins[i] += 1.0 / len(tied)
    count = len(wins)
    probabilities = tuple((1.0 - explore) * w / draws + explore / count for w in wins)
    n_mean = odds.mean
    expected = (0.0, *(n_mean * (beliefs[g].mean - p) + (1.0 - n_mean) * ignored - price
                       for g, p in zip(groups, penalties, strict=True)))
    return Distribution((QUIET, *(tip.id for tip in candidates)), probabilities, expected)


def draw(dist: Distribution, rng: random.Random) -> int:
    """The index of the action drawn from `dist` with `rng`."""
    point = rng.random()
    total = 0.0
    for index, probability in enumerate(dist.probabilities):
        total += probability
        if point < total:
            return index
    return len(dist.probabilities) - 1
