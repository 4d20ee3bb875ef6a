"""`oo evaluate`: policies against synthetic people with hidden preferences, for N days.

Each synthetic person lives the simulator's routine (`oo.simulator`: the
same signals, seed for seed) and has a hidden `oo.tastes.Taste`. For every
policy the same people are run through the engine's own pure step
(`domain.step.step`: fold, decide with the real moments, guards and
candidates, timers, reactions, tip expiry), with their reactions drawn from
their taste (common random numbers: a decision gets the same draws under
every policy). Nothing goes through Kafka; `Subject.run` orders the
person's signals, timers and reactions in time and measures each step.

Reported per policy: acceptance rate (done or ack, per tip sent), dismiss and
ignored rates, tips per person-day, mean reward per decision point and per
person-day, and regret per person-day (the expected reward an oracle who
knows the hidden taste would get at the same decision points — the best tip
or no tip — minus the policy's expected reward). Intervals resample people;
each policy is compared with the first one on the same people (paired
cluster bootstrap, and the pooled two-proportion z-test).

`--log PATH` writes every decision point (JSONL) for `oo replay`.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import IO, Any

from domain.bandit import QUIET, arm_group
from domain.candidates import Tip, gather
from domain.clock import utc
from domain.decide import TIP_TTL, Decision, Skip, decision_id_for, seed_for
from domain.features import UserFeatures
from domain.guards import GUARDS, learned_timing
from domain.learning import Learned
from domain.moments import SignalTrigger, TimerFired, Trigger, detect
from domain.policies import REGISTRY, Pick, Policy, resolve, uses_learned_timing
from domain.priors import DEFAULT_PRIORS, Priors, fit_priors
from domain.reward import ACCEPTED, NO_TIP_REWARD, REWARD
from domain.step import Config, Person, Reacted, SendReaction, Signalled, Step, TimerDue, step
from domain.timers import TimerCommand
from oo.metrics_report import event_of
from oo.simulator import Person as SimPerson
from oo.simulator import simulate_people
from oo.stats import cluster_ratio, paired_ratio_difference, two_proportion_z, wilson
from oo.tastes import Chances, Memory, Taste, chances, dwell_ms, react, topic_popularity
from topics.catalog import SIGNALS
from topics.records import Event

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DOMAIN_BY_TOPIC = {spec.name: domain for domain, spec in SIGNALS.items()}
PRESENT_SIGNALS = frozenset({"app_opened", "page_visible", "device_active"})
_SIGNAL, _TIMER, _FEEDBACK = 0, 1, 2


@dataclass
class Oracle:
    """A reference, not a policy oO could run: it knows the hidden taste.

    At each decision point it takes the action of highest expected reward (a
    tip, or no tip when every tip's is below 0). The evaluation sets `worth`
    (the expected reward of a tip at a decision point: features, tip, moment,
    instant) before each step.
    """

    name: str = "oracle"
    learned_timing: bool = False
    worth: Callable[[UserFeatures, Tip, Any, float], float] | None = None

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Any, seed: int,
             at: float | None = None) -> Pick | None:
        """The candidate of highest expected reward, or no tip."""
        if not candidates:
            return None
        when = float(at if at is not None else 0)
        worth = {tip.id: self.worth(features, tip, moment, when) if self.worth else 0.0
                 for tip in candidates}
        best = max(candidates, key=lambda tip: worth[tip.id])
        if worth[best.id] <= NO_TIP_REWARD:
            return Pick(None, 1.0, {QUIET: 1.0})
        return Pick(best, 1.0, {best.id: 1.0})


@dataclass
class Frozen:
    """A learning policy that stops learning at `since`: from then on it decides, for
    each person, with what it knew of them at its first decision from `since` on.

    What off-policy evaluation can evaluate is a fixed policy: what a learning
    policy would learn later depends on answers to tips it would have sent,
    which another policy's log does not hold. Frozen, the same policy is
    evaluated by replay and by running it. The knowledge frozen is the
    person's learned statistics (`UserFeatures.learned`: timing and content),
    learned timing included; their state (fatigue, recent tips) stays live.
    """

    inner: Policy
    since: float
    name: str
    learned_timing: bool = False  # applied in `pick`, with the frozen knowledge
    knowledge: dict[str, Learned] = field(default_factory=dict)

    def pick(self, features: UserFeatures, candidates: Sequence[Tip], moment: Any, seed: int,
             at: float | None = None) -> Pick | None:
        """The inner policy's pick, on the frozen knowledge once `since` has come."""
        when = float(at if at is not None else features.last_activity_at or 0)
        if when >= self.since:
            learned = self.knowledge.setdefault(features.user_id, features.learned)
            features = dataclasses.replace(features, learned=learned)
        if candidates and uses_learned_timing(self.inner) and not learned_timing(
                features, when, moment.name,
                getattr(self.inner, "priors", DEFAULT_PRIORS)).passed:
            return Pick(None, 1.0, {QUIET: 1.0})
        return self.inner.pick(features, candidates, moment, seed, when)


def policy_for(spec: str, priors: Priors | None = None,
               start: datetime = DEFAULT_START) -> Policy:
    """The policy a spec names: a registered name, optionally `+timing` or `-timing`.

    `random+timing` is random tips held back by learned timing;
    `bandit-timing` the bandit at the fixed moments; `bandit-personal` the
    bandit on global priors only (no per-person learning, no learned
    timing); `oracle` the reference that knows the hidden taste (`Oracle`).
    `SPEC@dD` is SPEC frozen `D` days after `start` (`Frozen`).
    """
    if "@d" in spec:
        base, _, day = spec.rpartition("@d")
        try:
            since = (start + timedelta(days=float(day))).timestamp()
        except ValueError:
            raise ValueError(f"{spec!r}: freeze after a number of days, e.g. {base}@d7") from None
        return Frozen(policy_for(base, priors, start), since, spec)
    if spec == "oracle":
        return Oracle()
    base = spec.removesuffix("+timing").removesuffix("-timing").removesuffix("-personal")
    policy = REGISTRY.get(base)
    changes: dict[str, Any] = {}
    for suffix, timing in (("+timing", True), ("-timing", False)):
        if spec.endswith(suffix):
            if not hasattr(policy, "learned_timing"):
                raise ValueError(f"policy {policy.name!r} has no learned timing to switch")
            changes.update(name=spec, learned_timing=timing)
    if spec.endswith("-personal"):
        if not hasattr(policy, "personal"):
            raise ValueError(f"policy {policy.name!r} has no personal learning to switch off")
        changes.update(name=spec, personal=False, learned_timing=False)
    if priors is not None and hasattr(policy, "priors"):
        changes["priors"] = priors
    if changes and dataclasses.is_dataclass(policy):
        return dataclasses.replace(policy, **changes)  # type: ignore[type-var]
    return policy


@dataclass
class Tally:
    """One person's outcomes under one policy."""

    user_id: str
    policy: str  # the policy that decided for them (an assignment's arm)
    points: int = 0
    sends: int = 0
    reactions: dict[str, int] = field(default_factory=dict)
    reward: float = 0.0  # realised, graded, over decision points
    expected: float = 0.0  # expected reward of the actions taken (hidden model)
    best: float = 0.0  # expected reward of the oracle's actions at the same points
    dwell_ms: int = 0
    first_answer: str | None = None

    @property
    def accepted(self) -> int:
        """Tips accepted (done or ack)."""
        return sum(self.reactions.get(r, 0) for r in ACCEPTED)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass
class Subject:
    """One synthetic person run under one policy: a miniature of the engine agent."""

    user_id: str
    taste: Taste
    policy: Policy
    shadows: Sequence[Policy]
    seed: int
    end: float
    log: Callable[[dict[str, Any]], None] | None = None
    events: Callable[[dict[str, Any]], None] | None = None
    person: Person = field(init=False)
    # From `switch_at` (epoch s) on, `then` decides instead of `policy` (a switch-over).
    then: Policy | None = None
    switch_at: float | None = None
    # A canary: at a `canary_share` of the decision points (by their decision id), the
    # `canary` policy decides instead: its decisions are sent, one at a time.
    canary: Policy | None = None
    canary_share: float = 0.0
    heap: list[tuple[float, int, int, Any]] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    tally: Tally = field(init=False)
    _order: Iterable[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.tally = Tally(self.user_id, resolve(self.policy, self.user_id).name)
        self.person = Person(self.user_id)

    @property
    def state(self) -> UserFeatures | None:
        """The person's features as the engine would hold them."""
        return self.person.features

    def live_at(self, at: float, decision_id: str = "") -> Policy:
        """The policy deciding at `at`: `policy`, or `then` once the switch-over has come, or
        the canary at its share of decision points."""
        if self.canary is not None and in_canary(decision_id, self.canary_share):
            return self.canary
        if self.then is not None and self.switch_at is not None and at >= self.switch_at:
            return self.then
        return self.policy

    def _push(self, at: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.heap, (at, next(iter(self._order)), kind, payload))

    def run(self, signals: Iterable[tuple[str, Event]]) -> Tally:
        """Process the person's signals, their timers and their reactions, in time order."""
        for topic, record in signals:
            self._push(record.occurred_at.timestamp(), _SIGNAL, (topic, record))
        horizon = self.end + TIP_TTL.total_seconds() + 60
        while self.heap:
            at, _, kind, payload = heapq.heappop(self.heap)
            if at > horizon:
                break
            if kind == _SIGNAL:
                self._on_signal(*payload)
            elif kind == _TIMER:
                self._on_timer(payload, at)
            else:
                self._on_feedback(payload, at)
        return self.tally

    # --- the engine's steps (domain.step, as agents/engine.py runs it) -------

    def _on_signal(self, topic: str, record: Event) -> None:
        domain = DOMAIN_BY_TOPIC[topic]
        if self.events is not None:
            event = event_of(topic, record)
            if event is not None:
                self.events(event)
        trigger = SignalTrigger(record, domain)
        present = domain == "mood" or getattr(record, "kind", None) in PRESENT_SIGNALS
        self._step(Signalled(record, domain), trigger, record.occurred_at, present)

    def _on_timer(self, payload: tuple[str, float], at: float) -> None:
        timer_id, fire_at = payload
        stored = self.person.timers.get(timer_id)
        if stored is None or stored[1] != fire_at or self.state is None:
            return  # moved, cancelled or fired already
        purpose, _, ref = stored
        if purpose != "tip_expired" and at >= self.end:
            return  # the simulated days are over: only tips still showing expire
        now = utc(fire_at)
        self._step(TimerDue(timer_id, purpose, now, ref), TimerFired(timer_id, purpose, now, ref),
                   now, False)

    def _on_feedback(self, payload: tuple[str, str, str], at: float) -> None:
        decision_id, tip_id, reaction = payload
        if self.state is None:
            return
        answer = _Answer(decision_id, tip_id, reaction, utc(at))
        before = self.person
        done = step(before, Reacted(answer), utc(at), Config(self.policy, self.shadows))
        self.person = done.person
        if done.person.features is not before.features:
            self._outcome(decision_id, reaction)
            self._push_timers(done)
            self._event("feedback", at, decision_id=decision_id, reaction=reaction)

    def _step(self, event: Signalled | TimerDue, trigger: Trigger, now: datetime,
              present: bool) -> None:
        """One step of the engine, then what the simulation measures of it."""
        at = now.timestamp()
        policy = self.live_at(at, decision_id_for(trigger.trigger_id))
        if isinstance(policy, Oracle):
            policy.worth = partial(self._worth, present)
        done = step(self.person, event, now, Config(policy, self.shadows))
        self.person = done.person
        if done.judged is not None and done.result is not None:
            self._measure(done.judged, done.result, trigger, now, present)
        for effect in done.effects:
            if isinstance(effect, SendReaction) and effect.reaction == "ignored":
                self._outcome(effect.decision_id, "ignored")
                self._event("feedback", at, decision_id=effect.decision_id, reaction="ignored")
        self._push_timers(done)

    def _push_timers(self, done: Step) -> None:
        for effect in done.effects:
            if isinstance(effect, TimerCommand) and effect.action == "set":
                fire_at = effect.fire_at.timestamp()
                self._push(fire_at, _TIMER, (effect.timer_id, fire_at))

    # --- deciding, and the person's answer ------------------------------

    def _worth(self, present: bool, features: UserFeatures, tip: Tip, moment: Any,
               at: float) -> float:
        """A tip's expected reward at a decision point, under the hidden taste."""
        return chances(self.taste, self.memory, group=arm_group(tip), tip_id=tip.id,
                       moment=moment.name, present=present, local=features.local_time(at),
                       at=at).expected_reward(tip.kind)

    def _measure(self, state: UserFeatures, result: Decision | Skip, trigger: Trigger,
                 now: datetime, present: bool) -> None:
        """Tally a decision point: what was decided on `state` (the features it was judged on)."""
        moment = detect(state, trigger, now, GUARDS).moment
        if moment is None:
            return  # no decision point: no moment, or a guard every policy obeys
        if not isinstance(result, Decision) and result.point is None:
            return  # e.g. a duplicate, or no candidate
        at = now.timestamp()
        candidates = gather(state, moment, now)
        local = state.local_time(at)
        odds = {tip.id: (tip, chances(self.taste, self.memory, group=arm_group(tip), tip_id=tip.id,
                                      moment=moment.name, present=present, local=local, at=at))
                for tip in candidates}
        worth = {tip_id: ch.expected_reward(tip.kind) for tip_id, (tip, ch) in odds.items()}
        best = max([NO_TIP_REWARD, *worth.values()])
        self.tally.points += 1
        self.tally.best += best
        entry = self._entry(result, now, moment.name, worth, present)
        if isinstance(result, Decision):
            tip = result.tip
            self.tally.sends += 1
            self.tally.expected += worth.get(tip.id, 0.0)
            self._event("decided", at, decision_id=result.decision_id)
            self._event("feedback", at + 2, decision_id=result.decision_id, reaction="delivered")
            self._answer(result.decision_id, tip, odds[tip.id][1], at)
            self.memory.received(tip.id, at)
            self.open[result.decision_id] = entry
            return
        entry["reward"] = NO_TIP_REWARD
        self._write(entry)

    def _entry(self, result: Any, now: datetime, moment: str, worth: Mapping[str, float],
               present: bool) -> dict[str, Any]:
        point = dict(result.point if not isinstance(result, Decision)
                     else result.context_snapshot["point"])
        chosen = point["chosen"]
        truth = {name: _value(scores, worth)
                 for name, scores in _all_scores(result).items()}
        return {"user_id": self.user_id, "decision_id": result.decision_id,
                "at": int(now.timestamp()), "moment": moment,
                "policy": result.policy, "chosen": chosen, "group": point["group"],
                "propensity": result.propensity, "point": point, "reaction": None,
                "reward": None, "sim": {"present": present, "expected": worth.get(chosen, 0.0),
                                        "best": max([0.0, *worth.values()]), "truth": truth}}

    def _answer(self, decision_id: str, tip: Tip, ch: Chances, at: float) -> None:
        rng = random.Random(f"{self.seed}:react:{decision_id}")
        drawn = react(ch, tip.kind, rng)
        if drawn is None:
            return  # never looked at: the expiry timer records it as ignored
        reaction, delay = drawn
        dwell = dwell_ms(rng, reaction)
        self.tally.dwell_ms += dwell
        self._event("feedback", at + delay - dwell / 1000, decision_id=decision_id,
                    reaction="seen", dwell_ms=dwell)
        self._push(at + delay, _FEEDBACK, (decision_id, tip.id, reaction))

    def _outcome(self, decision_id: str, reaction: str) -> None:
        entry = self.open.pop(decision_id, None)
        if entry is None:
            return
        reactions = self.tally.reactions
        reactions[reaction] = reactions.get(reaction, 0) + 1
        self.tally.reward += REWARD[reaction]
        if self.tally.first_answer is None:
            self.tally.first_answer = reaction
        entry["reaction"], entry["reward"] = reaction, REWARD[reaction]
        self._write(entry)

    def _event(self, kind: str, at: float, **fields: Any) -> None:
        if self.events is not None:
            self.events({"type": kind, "user_id": self.user_id, "at": int(at), **fields})

    def _write(self, entry: dict[str, Any]) -> None:
        if self.log is not None:
            self.log(entry)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A drawn reaction, shaped as the step reads a `FeedbackGiven`."""

    decision_id: str
    tip_id: str
    reaction: str
    occurred_at: datetime
    dwell_ms: int | None = None


def in_canary(decision_id: str, share: float) -> bool:
    """Whether the decision `decision_id` falls in a canary of `share` (0..1): a stable draw,
    independent of every policy's own draws."""
    return seed_for(decision_id, "canary") < share * 2 ** 64


def _all_scores(result: Any) -> dict[str, Mapping[str, float]]:
    scores: dict[str, Mapping[str, float]] = {}
    if result.scores:
        scores[result.policy] = result.scores
    for name, shadow in (getattr(result, "shadow", None) or {}).items():
        if shadow.scores is not None:
            scores[name] = shadow.scores
    return scores


def _value(scores: Mapping[str, float], worth: Mapping[str, float]) -> float:
    """The expected reward of a policy's action probabilities at a point (quiet is 0)."""
    return round(sum(p * worth.get(a, 0.0) for a, p in scores.items() if a != QUIET), 6)


# --- a whole evaluation ------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The synthetic people of a seed: their signals and hidden tastes."""

    people: tuple[tuple[str, Taste, tuple[tuple[str, Event], ...]], ...]
    start: datetime
    days: int
    seed: int

    @classmethod
    def build(cls, people: int, days: int, seed: int, start: datetime = DEFAULT_START) -> World:
        """Generate `people` people for `days` days from `start`, deterministically for `seed`."""
        rng = random.Random(seed)
        # Drawn exactly as simulate_people draws them, to know their wake time.
        persons = [SimPerson.generate(i, rng, "eval") for i in range(people)]
        events: dict[str, list[tuple[str, Event]]] = {p.user_id: [] for p in persons}
        for topic, record in simulate_people(people, start, days, seed, prefix="eval"):
            events[record.user_id].append((topic, record))
        popularity = topic_popularity()
        built = []
        for p in persons:
            taste = Taste.generate(random.Random(f"{seed}:taste:{p.user_id}"), popularity,
                                   p.wake_minute)
            built.append((p.user_id, taste, tuple(events[p.user_id])))
        return cls(tuple(built), start, days, seed)


@dataclass
class Outcome:
    """The tallies of one policy over every person."""

    policy: str
    tallies: list[Tally]
    seconds: float

    def totals(self) -> dict[str, float]:
        """Pooled counts."""
        sends = sum(t.sends for t in self.tallies)
        out: dict[str, float] = {"people": len(self.tallies), "sends": sends,
                                 "points": sum(t.points for t in self.tallies),
                                 "accepted": sum(t.accepted for t in self.tallies),
                                 "reward": sum(t.reward for t in self.tallies),
                                 "expected": sum(t.expected for t in self.tallies),
                                 "best": sum(t.best for t in self.tallies)}
        for reaction in REWARD:
            out[reaction] = sum(t.reactions.get(reaction, 0) for t in self.tallies)
        return out


def switch_time(world: World, day: float) -> float:
    """The epoch time `day` days after the start of `world`."""
    return (world.start + timedelta(days=day)).timestamp()


def run_policy(world: World, spec: str, *, shadows: Sequence[str] = (),
               log: IO[str] | None = None, progress: Callable[[str], None] | None = None,
               priors: Priors | None = None,
               collect: Callable[[dict[str, Any]], None] | None = None,
               events: IO[str] | None = None, then: str | None = None,
               switch_day: float | None = None, canary: str | None = None,
               canary_share: float = 0.0) -> Outcome:
    """Run every person of `world` under the policy `spec` (see `policy_for`).

    Every decision point goes to `log` (JSONL) and to `collect`, if given;
    the event log (signups, activity, decisions, feedback) to `events`. With
    `then` and `switch_day`, the policy `then` decides from `switch_day` days
    after the start on (a switch-over: until then, the run is `spec`'s own,
    decision for decision); the run is named `SPEC>THEN from day DAY`. With
    `canary`, that policy decides at `canary_share` of the decision points
    (`in_canary`); the run is named `SPEC+CANARY canary`.
    """
    policy = policy_for(spec, priors, world.start)
    switch_at = None
    if then is not None:
        if switch_day is None or not 0 < switch_day < world.days:
            raise ValueError(f"a switch-over needs a day between 0 and {world.days}, "
                             f"not {switch_day}")
        switch_at = switch_time(world, switch_day)
        spec = f"{spec}>{then} from day {switch_day:g}"
    then_policy = policy_for(then, priors, world.start) if then is not None else None
    canary_policy = None
    if canary is not None:
        if not 0 < canary_share < 1:
            raise ValueError(f"a canary's share lies between 0 and 1, not {canary_share}")
        canary_policy = policy_for(canary, priors, world.start)
        spec = f"{spec}+{canary} canary"
    shadow_policies = [policy_for(s, priors, world.start) for s in shadows]
    end = (world.start + timedelta(days=world.days)).timestamp()
    writer = None
    if log is not None or collect is not None:
        def writer(entry: dict[str, Any]) -> None:
            if log is not None:
                log.write(json.dumps({"run": spec, **entry}, separators=(",", ":")) + "\n")
            if collect is not None:
                collect(entry)
    event_writer = None
    if events is not None:
        def event_writer(event: dict[str, Any]) -> None:
            events.write(json.dumps({"run": spec, **event}, separators=(",", ":")) + "\n")
    began = time.monotonic()
    tallies = []
    last = began
    for index, (user_id, taste, signals) in enumerate(world.people, start=1):
        subject = Subject(user_id, taste, policy, shadow_policies, world.seed, end, writer,
                          event_writer, then=then_policy, switch_at=switch_at,
                          canary=canary_policy, canary_share=canary_share)
        tallies.append(subject.run(signals))
        if progress is not None and (time.monotonic() - last > 5 or index == len(world.people)):
            last = time.monotonic()
            progress(f"evaluate: {spec}: {index}/{len(world.people)} people "
                     f"({last - began:.0f} s)")
    return Outcome(spec, tallies, time.monotonic() - began)


def summarise(outcomes: Sequence[Outcome], days: int, *, seed: int = 0,
              draws: int = 2000) -> dict[str, Any]:
    """Every figure of the report, JSON-ready: per policy, and each against the first."""
    policies = []
    for outcome in outcomes:
        t = outcome.totals()
        sends, points, person_days = t["sends"], t["points"], t["people"] * days
        acceptance = cluster_ratio([(x.accepted, x.sends) for x in outcome.tallies],
                                   draws=draws, seed=seed)
        reward = cluster_ratio([(x.reward, x.points) for x in outcome.tallies], draws=draws,
                               seed=seed)
        regret = cluster_ratio([(x.best - x.expected, days) for x in outcome.tallies],
                               draws=draws, seed=seed)
        per_day = cluster_ratio([(x.sends, days) for x in outcome.tallies], draws=draws, seed=seed)
        arms: dict[str, int] = {}
        for x in outcome.tallies:
            arms[x.policy] = arms.get(x.policy, 0) + 1
        policies.append({
            "policy": outcome.policy, "people": int(t["people"]), "days": days,
            "decision_points": int(points), "sends": int(sends),
            "acceptance": acceptance.as_dict(),
            "acceptance_wilson": list(wilson(t["accepted"], sends)),
            "dismiss_rate": t["dismiss"] / sends if sends else 0.0,
            "ignored_rate": t["ignored"] / sends if sends else 0.0,
            "reactions": {r: int(t[r]) for r in REWARD},
            "tips_per_day": per_day.as_dict(),
            "reward_per_point": reward.as_dict(),
            "reward_per_day": t["reward"] / person_days,
            "expected_per_point": t["expected"] / points if points else 0.0,
            "regret_per_day": regret.as_dict(),
            "quiet_share": 1.0 - sends / points if points else 0.0,
            "mean_dwell_ms": (sum(x.dwell_ms for x in outcome.tallies)
                              / max(1, sum(sum(x.reactions.get(r, 0) for r in REWARD if r != "ignored")
                                           for x in outcome.tallies))),
            "arms": arms, "seconds": round(outcome.seconds, 1),
        })
    comparisons = []
    base = outcomes[0]
    for outcome in outcomes[1:]:
        pairs = [((a.accepted, a.sends), (b.accepted, b.sends))
                 for a, b in zip(base.tallies, outcome.tallies, strict=True)]
        diff, p_cluster = paired_ratio_difference(pairs, draws=draws, seed=seed)
        ta, tb = base.totals(), outcome.totals()
        z, p_pooled = two_proportion_z(ta["accepted"], ta["sends"], tb["accepted"], tb["sends"])
        day_pairs = [((a.sends, days), (b.sends, days))
                     for a, b in zip(base.tallies, outcome.tallies, strict=True)]
        tips_diff, tips_p = paired_ratio_difference(day_pairs, draws=draws, seed=seed)
        comparisons.append({
            "baseline": base.policy, "policy": outcome.policy,
            "acceptance_difference": diff.as_dict(), "p_value_cluster": p_cluster,
            "z_pooled": z, "p_value_pooled": p_pooled,
            "tips_per_day_difference": tips_diff.as_dict(), "tips_per_day_p_value": tips_p,
        })
    return {"policies": policies, "comparisons": comparisons}


def render(summary: Mapping[str, Any], *, seed: int, people: int, days: int) -> str:
    """The report as a text table."""
    lines = [f"oo evaluate: {people} synthetic people, {days} days, seed {seed} "
             f"(95% intervals resample people)", ""]
    header = (f"{'policy':<16} {'acceptance':>22} {'dismiss':>8} {'ignored':>8} "
              f"{'tips/day':>16} {'reward/point':>13} {'regret/day':>16} {'quiet':>6}")
    lines += [header, "-" * len(header)]
    for p in summary["policies"]:
        a, d, r, g = p["acceptance"], p["tips_per_day"], p["reward_per_point"], p["regret_per_day"]
        lines.append(
            f"{p['policy']:<16} {_pct(a['value'])} [{_pct(a['low'])},{_pct(a['high'])}] "
            f"{_pct(p['dismiss_rate']):>8} {_pct(p['ignored_rate']):>8} "
            f"{d['value']:>5.2f} [{d['low']:.2f},{d['high']:.2f}] "
            f"{r['value']:>+13.3f} {g['value']:>5.3f} [{g['low']:.2f},{g['high']:.2f}] "
            f"{_pct(p['quiet_share']):>6}")
    if summary["comparisons"]:
        lines.append("")
    for c in summary["comparisons"]:
        a, t = c["acceptance_difference"], c["tips_per_day_difference"]
        lines.append(
            f"{c['policy']} vs {c['baseline']}: acceptance {a['value'] * 100:+.1f} pp "
            f"[{a['low'] * 100:+.1f}, {a['high'] * 100:+.1f}], p = {_p(c['p_value_cluster'])} "
            f"(people resampled; pooled z = {c['z_pooled']:.1f}, p = {_p(c['p_value_pooled'])}); "
            f"tips/day {t['value']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}]")
    return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{x * 100:5.1f}%"


def _p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def warm_up(people: int, days: int, seed: int, start: datetime = DEFAULT_START,
            progress: Callable[[str], None] | None = None) -> Priors:
    """Global priors fitted on a separate cohort (`seed`) given random tips for `days` days.

    What `oo replay --fit-priors` does with a real deployment's logs: the
    answers of one cohort become the priors of the next.
    """
    world = World.build(people, days, seed, start)
    points: list[dict[str, Any]] = []
    run_policy(world, "random", progress=progress, collect=points.append)
    return fit_priors(points,
                      source=f"oo evaluate warm-up: random, {people} people, {days} days, "
                             f"seed {seed}")


def window_value(entries: Iterable[Mapping[str, Any]], users: Iterable[str], since: float,
                 *, draws: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean realised reward per decision point of the points decided from `since` on,
    with its interval resampling people (every person of `users` counts, with or
    without points then)."""
    sums = {user: [0.0, 0.0] for user in users}
    for e in entries:
        if e["at"] >= since and e.get("reward") is not None:
            cell = sums.setdefault(str(e["user_id"]), [0.0, 0.0])
            cell[0] += float(e["reward"])
            cell[1] += 1.0
    return cluster_ratio([(a, b) for a, b in sums.values()], draws=draws, seed=seed).as_dict()


def _compared(check: dict[str, Any], measured: Mapping[str, float]) -> dict[str, Any]:
    check["measured"] = dict(measured)
    for key in ("dr", "ips"):
        check[f"measured_inside_{key}_interval"] = \
            check[key]["low"] <= measured["value"] <= check[key]["high"]
    return check


def switch_over_check(world: World, logger: str, target: str, logged: Sequence[Mapping[str, Any]],
                      *, switch_day: float, priors: Priors | None = None, draws: int = 1000,
                      seed: int = 0, progress: Callable[[str], None] | None = None
                      ) -> dict[str, Any]:
    """Replay against running, like with like: the switch-over of the recommended rollout.

    `logged` is `logger`'s run, with `TARGET@dDAY` (`Frozen`) among its shadows.
    Until `switch_day` the target learns beside the logger, as a shadow does;
    then it stops learning. Replay estimates it on the logger's decision points
    from `switch_day` on; the value measured by running it comes from a run of
    the same people that is the logger's until `switch_day` (decision for
    decision: the target starts with the same knowledge and the person in the
    same state) and the frozen target's after it.
    """
    from oo.replay import replay

    frozen = f"{target}@d{switch_day:g}"
    since = switch_time(world, switch_day)
    ran: list[dict[str, Any]] = []
    run_policy(world, logger, then=frozen, switch_day=switch_day, priors=priors,
               collect=ran.append, progress=progress)
    check = replay([{"run": logger, **e} for e in logged if e["at"] >= since], frozen,
                   draws=draws, seed=seed)
    check.update(protocol="switch-over", switch_day=switch_day, days=world.days)
    window = [e for e in ran if e["at"] >= since]
    if window:
        # The hidden model's expected reward of the actions taken: running it, without noise.
        check["expected_by_running"] = sum(e["sim"]["expected"] for e in window) / len(window)
    return _compared(check, window_value(window, (p[0] for p in world.people), since,
                                         draws=draws, seed=seed))


CANARY_SHARE = 0.2


def canary_check(world: World, logger: str, target: str, replayed: Mapping[str, Any], *,
                 share: float = CANARY_SHARE, priors: Priors | None = None, draws: int = 1000,
                 seed: int = 0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """A diagnostic: how much of what deploying `target` changes comes from its own decisions.

    `replayed` is the replay of `target` on `logger`'s log: per-decision
    replay scores the target's decisions on the person as the logger left
    them. Here the target's decisions are sent, at `share` of the decision
    points (a stable draw on the decision id; the logger decides the
    others), and its mean reward at them is measured. Between replay (share
    0) and running it (share 1), the gap grows with the share: it comes from
    the target's own earlier decisions (tips repeated, fatigue, the decision
    points its silences open), which per-decision replay cannot see.
    """
    ran: list[dict[str, Any]] = []
    run_policy(world, logger, canary=target, canary_share=share, priors=priors,
               collect=ran.append, progress=progress)
    mine = [e for e in ran if e["policy"] == target]
    check = {k: v for k, v in replayed.items() if not k.startswith(("measured", "expected"))}
    check.update(protocol="canary", share=share, canary_points=len(mine))
    if mine:
        check["expected_by_running"] = sum(e["sim"]["expected"] for e in mine) / len(mine)
    return _compared(check, window_value(mine, (p[0] for p in world.people), 0.0,
                                         draws=draws, seed=seed))


def evaluate(*, people: int, days: int, seed: int, policies: Sequence[str],
             shadows: Sequence[str] = (), log: IO[str] | None = None,
             start: datetime = DEFAULT_START, progress: Callable[[str], None] | None = None,
             draws: int = 2000, warmup: int = 0, warmup_seed: int | None = None,
             priors: Priors | None = None, replay_check: str | None = None,
             events: IO[str] | None = None, switch_day: float | None = None,
             canary_share: float = CANARY_SHARE) -> dict[str, Any]:
    """Run each policy on the same synthetic people; return the summary (see `summarise`).

    With `warmup` > 0, the bandit's global priors are first fitted on that
    many other people (`warmup_seed`, default `seed` + 1000) given random tips.
    With `replay_check` (a policy among `policies`), that policy also runs as
    a shadow of the first one, whose log is then replayed (`oo.replay`) to
    estimate it; the estimate is set beside the value measured by running it:
    `replay_check` by the switch-over protocol at `switch_day` (default half
    the days; `switch_over_check`), `replay_check_canary` against the policy
    sending at `canary_share` of the decision points (`canary_check`), and
    `replay_check_whole` over the whole run (the learning policy replayed as a
    shadow, against it run from day 0).
    """
    from oo.replay import replay

    if warmup > 0:
        priors = warm_up(warmup, days, warmup_seed if warmup_seed is not None else seed + 1000,
                         start, progress)
    if replay_check is not None:
        if replay_check not in policies[1:]:
            raise ValueError(f"--replay-check {replay_check} must be one of the policies run "
                             f"after the first ({policies[0]}, the logging policy)")
        shadows = list(dict.fromkeys([*shadows, replay_check]))
        if switch_day is None:
            switch_day = days / 2
        if not 0 < switch_day < days:
            raise ValueError(f"the switch-over day must lie within the {days} days")
    world = World.build(people, days, seed, start)
    logged: list[dict[str, Any]] = []
    frozen = [f"{replay_check}@d{switch_day:g}"] if replay_check is not None else []
    outcomes = [run_policy(world, spec, shadows=[*shadows, *frozen] if i == 0 else shadows,
                           log=log, progress=progress, priors=priors,
                           collect=logged.append if i == 0 and replay_check else None,
                           events=events) for i, spec in enumerate(policies)]
    summary = summarise(outcomes, days, seed=seed, draws=draws)
    summary.update({"seed": seed, "people": people, "days": days,
                    "start": start.isoformat(), "shadows": list(shadows),
                    "warmup": {"people": warmup, "seed": warmup_seed if warmup_seed is not None
                               else seed + 1000} if warmup > 0 else None,
                    "priors": priors.to_document() if priors is not None else None})
    if replay_check is not None:
        assert switch_day is not None
        whole = replay([{"run": policies[0], **e} for e in logged], replay_check,
                       draws=min(draws, 1000), seed=seed)
        measured = next(p for p in summary["policies"] if p["policy"] == replay_check)
        whole.update(protocol="whole run", expected_by_running=measured["expected_per_point"])
        summary["replay_check_whole"] = _compared(whole, measured["reward_per_point"])
        summary["replay_check"] = switch_over_check(
            world, policies[0], replay_check, logged, switch_day=switch_day, priors=priors,
            draws=min(draws, 1000), seed=seed, progress=progress)
        summary["replay_check_canary"] = canary_check(
            world, policies[0], replay_check, whole, share=canary_share, priors=priors,
            draws=min(draws, 1000), seed=seed, progress=progress)
    return summary

