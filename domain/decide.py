"""The whole decision: detect the moment, gather candidates, let the policy pick.

`decide` returns a `Decision` or a `Skip` that says why not (no moment, a
guard, no candidate). Everything random or identifying is derived from the
trigger's id: the decision id, and from it the seed, so a redelivered trigger
reproduces the same decision, down to the tip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from domain.candidates import SOURCES, SourceRegistry, Tip, gather
from domain.clock import epoch, hhmm
from domain.features import UserFeatures
from domain.guards import GUARDS
from domain.moments import Moment, MomentDecision, Trigger, detect
from domain.policies import REGISTRY, Pick, Policy, PolicyRegistry

TIP_TTL = timedelta(hours=4)
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class ShadowPick:
    """What a shadow policy would have said: logged, never sent."""

    tip_id: str | None
    propensity: float | None
    error: str | None = None


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
    stage: Literal["duplicate", "moment", "guard", "candidates", "policy"]
    reason: str
    moment: str | None = None
    guard: str | None = None

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
    `policy` and `shadow_policies` are policies or registered names; shadow
    picks are computed on the same candidates and recorded (in `shadow` and
    in the context snapshot), never sent.
    """
    live = policy_registry.get(policy) if isinstance(policy, str) else policy
    shadows = [policy_registry.get(p) if isinstance(p, str) else p for p in shadow_policies]
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
    candidates = gather(features, moment, now, sources=sources, registry=source_registry)
    if not candidates:
        return Skip(decision_id, trigger.trigger_id, "candidates",
                    f"no candidate for {moment.name}", moment.name)
    seed = seed_for(decision_id)
    chosen = live.pick(features, candidates, moment, seed)
    if chosen is None:
        return Skip(decision_id, trigger.trigger_id, "policy",
                    f"policy {live.name} picked nothing", moment.name)
    shadow = {p.name: _shadow_pick(p, features, candidates, moment, decision_id) for p in shadows}
    snapshot = context_snapshot(features, now, verdict, len(candidates), shadow)
    return Decision(
        decision_id=decision_id, triggered_by=trigger.trigger_id, user_id=features.user_id,
        moment=moment.name, policy=live.name, propensity=chosen.propensity, tip=chosen.tip,
        reason=_reason(moment, chosen, live.name, len(candidates)),
        context_snapshot=snapshot, decided_at=now, expires_at=now + TIP_TTL, seed=seed,
        shadow=shadow)


def _shadow_pick(policy: Policy, features: UserFeatures, candidates: Sequence[Tip],
                 moment: Moment, decision_id: str) -> ShadowPick:
    try:
        chosen = policy.pick(features, candidates, moment, seed_for(decision_id, policy.name))
    except Exception as err:  # noqa: BLE001 - an experiment must never cost the person their tip
        return ShadowPick(None, None, f"{type(err).__name__}: {err}"[:200])
    return ShadowPick(chosen.tip.id, chosen.propensity) if chosen else ShadowPick(None, None)


def _reason(moment: Moment, chosen: Pick, policy: str, count: int) -> str:
    text = (f"{moment.name}: {moment.detail}; {policy} picked {chosen.tip.kind} "
            f"'{chosen.tip.title}' from {count} candidates (p={chosen.propensity:.2f})")
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
