"""The whole decision: detect the moment, gather candidates, let the policy pick.

`decide` returns a `Decision` or a `Skip` that says why not (no moment, a
guard, no candidate, the policy chose no tip now). Everything random or
identifying is derived from the trigger's id: the decision id, and from it
the seed, so a redelivered trigger reproduces the same decision, down to the
tip.

Every *decision point* — a moment that passed the guards — is logged for
learning with the probabilities the live policy and each shadow policy gave
its actions (`decision_point`): in the decision's context snapshot
("point"), or, when the live policy chose no tip now, in the features
(`record_quiet`) until the next decision carries it ("quiet_before").
Off-policy evaluation (`oo replay`) reads nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from domain.bandit import QUIET, arm_group
from domain.candidates import SOURCES, SourceRegistry, Tip, gather
from domain.clock import epoch, hhmm
from domain.features import UserFeatures
from domain.guards import GUARDS, learned_timing
from domain.learning import timing_bucket
from domain.moments import Moment, MomentDecision, Trigger, detect
from domain.policies import REGISTRY, Pick, Policy, PolicyRegistry, resolve, uses_learned_timing
from domain.priors import DEFAULT_PRIORS

TIP_TTL = timedelta(hours=4)
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class ShadowPick:
    """What a shadow policy would have said: logged, never sent.

    `tip_id` None with a propensity is the shadow choosing no tip now;
    `scores` its probability of every action.
    """

    tip_id: str | None
    propensity: float | None
    error: str | None = None
    scores: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Decision:
    """A tip to give now, with everything needed to explain and learn from it.

    `record_fields()` are the fields of `topics.records.TipDecided` beyond the
    event envelope (event_id, user_id, occurred_at, source).
    """

    decision_id: str
    triggered_by: str
    user_id: str
    moment: str
    policy: str
    propensity: float
    tip: Tip
    reason: str
    context_snapshot: Mapping[str, Any]
    decided_at: datetime
    expires_at: datetime
    seed: int
    shadow: Mapping[str, ShadowPick] = field(default_factory=dict)
    group: str = ""  # the tip's arm group (domain.bandit.arm_group), for learning
    scores: Mapping[str, float] = field(default_factory=dict)  # the live policy's probabilities

    def record_fields(self) -> dict[str, Any]:
        """Keyword fields of TipDecided: the tip as a dict of `topics.records.Tip` fields,
        `expires_at` an aware datetime, the rest JSON-ready."""
        return {"decision_id": self.decision_id, "triggered_by": self.triggered_by,
                "moment": self.moment, "policy": self.policy, "propensity": self.propensity,
                "reason": self.reason, "tip": self.tip.to_dict(),
                "context_snapshot": dict(self.context_snapshot), "expires_at": self.expires_at}


@dataclass(frozen=True, slots=True)
class Skip:
    """No tip for this trigger, and why: `str(skip)` is the log line ("skip: quiet_hours: ...")."""

    decision_id: str
    triggered_by: str
    stage: Literal["duplicate", "moment", "guard", "candidates", "policy", "quiet"]
    reason: str
    moment: str | None = None
    guard: str | None = None
    # A decision point where the live policy chose no tip now ("quiet", or held
    # back by its learned timing): its name, the propensity of staying quiet,
    # and the point to log (`domain.features.record_quiet`).
    policy: str | None = None
    propensity: float | None = None
    point: Mapping[str, Any] | None = None
    scores: Mapping[str, float] | None = None

    def __str__(self) -> str:
        return f"skip: {self.guard or self.stage}: {self.reason}"


def decision_id_for(trigger_id: str) -> str:
    """The decision id a trigger gives: 32 hex chars of sha256("decision:" + trigger id)."""
    return hashlib.sha256(f"decision:{trigger_id}".encode()).hexdigest()[:32]


def seed_for(decision_id: str, salt: str = "") -> int:
    """A 64-bit seed derived from a decision id (and a salt, e.g. a shadow policy's name)."""
    return int(hashlib.sha256(f"seed:{decision_id}:{salt}".encode()).hexdigest()[:16], 16)


def decide(features: UserFeatures, trigger: Trigger, now: datetime, *,
           policy: Policy | str, shadow_policies: Sequence[Policy | str] = (),
           sources: Sequence[str] | None = None, source_registry: SourceRegistry = SOURCES,
           policy_registry: PolicyRegistry = REGISTRY) -> Decision | Skip:
    """Decide whether to give a tip for `trigger` at `now`, and which.

    `features` must already include the trigger's own signal. A trigger whose
    decision the features already record is a `Skip` at stage "duplicate".
    `policy` and `shadow_policies` are policies or registered names (an
    assignment resolves to the person's policy); shadow picks are computed on
    the same candidates and recorded (in `shadow` and in the context
    snapshot), never sent. A policy with learned timing is held back by
    `guards.learned_timing` after the other guards passed; a held-back or
    quiet live policy gives a `Skip` carrying the decision point to log.
    """
    named = policy_registry.get(policy) if isinstance(policy, str) else policy
    live = resolve(named, features.user_id, policy_registry)
    shadows = [resolve(policy_registry.get(p) if isinstance(p, str) else p, features.user_id,
                       policy_registry) for p in shadow_policies]
    # A shadow of the live policy itself (an assignment's arm) would only repeat it.
    shadows = [p for p in shadows if p.name != live.name]
    decision_id = decision_id_for(trigger.trigger_id)
    if features.recent_tips.get(decision_id) is not None:
        # A redelivered trigger whose decision is already in the state: it was
        # sent before it was recorded, so there is nothing left to do (and the
        # guards would now see the decision itself and wrongly report spacing).
        return Skip(decision_id, trigger.trigger_id, "duplicate", "decision already recorded")
    verdict = detect(features, trigger, now, GUARDS)
    moment = verdict.detected
    if moment is None:
        return Skip(decision_id, trigger.trigger_id, "moment", verdict.no_moment)
    blocked = verdict.blocked_by
    if blocked is not None:
        return Skip(decision_id, trigger.trigger_id, "guard", blocked.reason, moment.name,
                    blocked.name)
    at = epoch(now)
    timing = learned_timing(features, at, moment.name, getattr(live, "priors", DEFAULT_PRIORS)) \
        if uses_learned_timing(live) else None
    held = timing is not None and not timing.passed
    if timing is not None and held and not shadows:
        # Nothing else needs the candidates: log the point and stay quiet.
        point = decision_point(features, at, moment.name, (), {live.name: {QUIET: 1.0}}, QUIET)
        if named is not live:
            point["assignment"] = named.name
        return Skip(decision_id, trigger.trigger_id, "guard", timing.reason, moment.name,
                    timing.name, live.name, 1.0, point, {QUIET: 1.0})
    candidates = gather(features, moment, now, sources=sources, registry=source_registry)
    if not candidates:
        return Skip(decision_id, trigger.trigger_id, "candidates",
                    f"no candidate for {moment.name}", moment.name)
    seed = seed_for(decision_id)
    chosen = Pick(None, 1.0, {QUIET: 1.0}) if held else \
        live.pick(features, candidates, moment, seed, at)
    if chosen is None:
        return Skip(decision_id, trigger.trigger_id, "policy",
                    f"policy {live.name} picked nothing", moment.name)
    shadow = {p.name: _shadow_pick(p, features, candidates, moment, decision_id, at)
              for p in shadows}
    dists = {live.name: chosen.scores}
    dists.update((name, s.scores) for name, s in shadow.items() if s.scores is not None)
    point = decision_point(features, at, moment.name, candidates, dists, chosen.action)
    if named is not live:
        point["assignment"] = named.name
    if chosen.tip is None:
        if timing is not None and held:
            return Skip(decision_id, trigger.trigger_id, "guard", timing.reason, moment.name,
                        timing.name, live.name, 1.0, point, chosen.scores)
        return Skip(decision_id, trigger.trigger_id, "quiet",
                    f"{live.name} chose no tip now (p={chosen.propensity:.2f}) "
                    f"from {len(candidates)} candidates", moment.name, None, live.name,
                    chosen.propensity, point, chosen.scores)
    snapshot = context_snapshot(features, now, verdict, len(candidates), shadow)
    snapshot["point"] = point
    quiet = features.learned.quiet()
    if quiet:
        snapshot["quiet_before"] = [[d, a, p] for d, a, p in quiet]
    if features.learned.quiet_dropped:
        snapshot["quiet_dropped"] = features.learned.quiet_dropped
    return Decision(
        decision_id=decision_id, triggered_by=trigger.trigger_id, user_id=features.user_id,
        moment=moment.name, policy=live.name, propensity=chosen.propensity, tip=chosen.tip,
        reason=_reason(moment, chosen.tip, chosen.propensity, live.name, len(candidates)),
        context_snapshot=snapshot, decided_at=now, expires_at=now + TIP_TTL, seed=seed,
        shadow=shadow, group=arm_group(chosen.tip), scores=chosen.scores)


def _shadow_pick(policy: Policy, features: UserFeatures, candidates: Sequence[Tip],
                 moment: Moment, decision_id: str, at: float) -> ShadowPick:
    if uses_learned_timing(policy) and not learned_timing(
            features, at, moment.name, getattr(policy, "priors", DEFAULT_PRIORS)).passed:
        return ShadowPick(None, 1.0, None, {QUIET: 1.0})
    try:
        chosen = policy.pick(features, candidates, moment, seed_for(decision_id, policy.name), at)
    except Exception as err:  # noqa: BLE001 - an experiment must never cost the person their tip
        return ShadowPick(None, None, f"{type(err).__name__}: {err}"[:200])
    if chosen is None:
        return ShadowPick(None, None)
    return ShadowPick(chosen.tip.id if chosen.tip else None, chosen.propensity, None,
                      chosen.scores)


def decision_point(features: UserFeatures, at: float, moment: str, candidates: Sequence[Tip],
                   dists: Mapping[str, Mapping[str, float]], chosen: str) -> dict[str, Any]:
    """What off-policy evaluation needs of one decision point, compact and JSON-ready.

    {"moment", "bucket" (timing bucket: hour of week, or "p" at the device),
    "hour" (local), "n" (candidates), "chosen" (tip id or "quiet"), "group"
    (its arm group), "p": {policy: [probability of the chosen action,
    {arm group or "quiet": probability}]}} — for the live policy and every
    shadow that gave probabilities.
    """
    wall = features.local_time(at)
    groups = {tip.id: arm_group(tip) for tip in candidates}
    groups[QUIET] = QUIET
    by_policy: dict[str, list[Any]] = {}
    for name, scores in dists.items():
        summed: dict[str, float] = {}
        for action, probability in scores.items():
            group = groups.get(action, action)
            summed[group] = summed.get(group, 0.0) + probability
        by_policy[name] = [round(scores.get(chosen, 0.0), 6),
                           {g: round(p, 6) for g, p in summed.items() if p > 0.0}]
    return {"moment": moment, "bucket": timing_bucket(moment, wall.weekday(), wall.hour),
            "hour": wall.hour, "n": len(candidates), "chosen": chosen,
            "group": groups.get(chosen, chosen), "p": by_policy}


def _reason(moment: Moment, tip: Tip, propensity: float, policy: str, count: int) -> str:
    text = (f"{moment.name}: {moment.detail}; {policy} picked {tip.kind} "
            f"'{tip.title}' from {count} candidates (p={propensity:.2f})")
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 1] + "…"


def _minutes(later: float | None, earlier: float | None) -> int | None:
    return None if later is None or earlier is None else int((later - earlier) // 60)


def context_snapshot(features: UserFeatures, now: datetime, verdict: MomentDecision,
                     candidates: int, shadow: Mapping[str, ShadowPick]) -> dict[str, Any]:
    """A compact, JSON-ready picture of what the decision saw (for the log and for learning)."""
    at = epoch(now)
    wall = features.local_time(at)
    p = features.prefs
    todos = features.open_todos_ranked()
    next_due = next((t.due_at for t in todos if t.due_at is not None and t.due_at >= at), None)
    window = features.free_window(at)
    reactions: dict[str, int] = {}
    for r in features.reactions:
        reactions[r.reaction] = reactions.get(r.reaction, 0) + 1
    moment = verdict.detected
    return {
        "moment": moment.name if moment else None,
        "moment_ref": moment.ref if moment else None,
        "local_time": f"{wall:%Y-%m-%dT%H:%M%z}",
        "weekday": wall.strftime("%a"),
        "time_zone": p.time_zone,
        "quiet_hours": f"{hhmm(p.quiet_start_minute)}-{hhmm(p.quiet_end_minute)}",
        "open_todos": len(todos),
        "overdue_todos": sum(1 for t in todos if t.due_at is not None and t.due_at < at),
        "next_due_in_min": _minutes(next_due, at),
        "habits": len(features.habits),
        "habits_open_today": sum(1 for h in features.habits
                                 if not features.habit_settled_on_day_of(h, at)),
        "mood": features.mood_score,
        "mood_age_min": _minutes(at, features.mood_at),
        "busy": window is None,
        "free_for_min": _minutes(window[1], at) if window else None,
        "meeting_ended_min_ago": _minutes(at, window[0]) if window else None,
        "last_app_open_min_ago": _minutes(at, features.last_app_open_at),
        "tips_today": features.tips_on_day_of(at),
        "daily_budget": p.daily_budget,
        "last_tip_min_ago": _minutes(at, features.last_tip_at),
        "fatigue": round(features.fatigue_level(at), 2),
        "recent_reactions": reactions,
        "kinds": list(p.kinds),
        "candidates": candidates,
        "guards_passed": list(verdict.passed),
        "shadow": {name: {"tip_id": s.tip_id, "propensity": s.propensity, "error": s.error}
                   for name, s in shadow.items()},
    }
