"""The engine's whole logic for one event of one person, as a pure function.

`step(person, event, now, config) -> Step(person, effects)`: the person's
state before (their features, the forgotten marker, their durable timers and
the decisions not yet confirmed by the broker), one event (a signal, a
reaction, a timer command or a due timer), the engine's `now`, and the
policies; out come the state after and the effects to carry out, as plain
values: send a decision, send a reaction, re-send an unconfirmed decision,
set or cancel a timer, count something. The engine (agents/engine.py) turns
them into table writes and produced records, the evaluation lab (oo/evaluate.py)
into its simulation, the benchmark into timings: all three run this one step.

Nothing here reads a clock, opens a socket or encodes a record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple

from domain.clock import seconds
from domain.decide import Decision, Skip, decide
from domain.features import (
    TODO_TIP_PREFIX,
    UserFeatures,
    apply_decision,
    apply_feedback,
    fold,
    record_quiet,
)
from domain.moments import SignalTrigger, TimerFired, Trigger
from domain.policies import Policy
from domain.reward import is_answer
from domain.timers import FORGET, TimerCommand, forget_timer, plan_timers, tip_expired_unanswered

# A durable timer: (purpose, fire_at in epoch seconds, ref).
Timer = tuple[str, float, str | None]


class Unconfirmed(NamedTuple):
    """A decision on its way to `oo.tips.decided`: its id and its encoded record (opaque here)."""

    decision_id: str
    record: str


@dataclass(frozen=True, slots=True)
class Person:
    """Everything the engine keeps about one person.

    `features` is None before their first signal and once they are forgotten;
    `forgotten_at` is set while a deleted person's marker stands
    (docs/adr/0012-durable-forgetting.md). A person with neither, no timers and
    no outbox is nobody: the engine keeps no entry for them.
    """

    user_id: str
    features: UserFeatures | None = None
    forgotten_at: int | None = None
    timers: Mapping[str, Timer] = field(default_factory=dict)
    outbox: tuple[Unconfirmed, ...] = ()

    @property
    def forgotten(self) -> bool:
        """They asked to be deleted (the marker; or a state an older version kept as one)."""
        return self.forgotten_at is not None or (
            self.features is not None and self.features.deletion_requested)


@dataclass(frozen=True)
class Config:
    """The step's settings: the live policy, the shadows, and the forget window."""

    policy: Policy | str = "random"
    shadow_policies: Sequence[Policy | str] = ()
    forget_window_s: float = 86400.0


# --- events in ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signalled:
    """A validated signal (a `topics.records` signal, by duck typing) of `domain`."""

    record: Any
    domain: str


@dataclass(frozen=True, slots=True)
class Reacted:
    """A validated reaction (`topics.records.FeedbackGiven`, by duck typing)."""

    record: Any


@dataclass(frozen=True, slots=True)
class TimerCommanded:
    """A set or cancel command for one of the person's timers, read from `oo.timers`."""

    command: TimerCommand


@dataclass(frozen=True, slots=True)
class TimerDue:
    """One of the person's timers came due (a `fire` command on `oo.timers`)."""

    timer_id: str
    purpose: str
    fire_at: datetime
    ref: str | None = None


Event = Signalled | Reacted | TimerCommanded | TimerDue


# --- effects out ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendDecision:
    """Publish this decision (the state after the step records it as given)."""

    decision: Decision


@dataclass(frozen=True, slots=True)
class SendReaction:
    """Publish a reaction the engine gives on the person's behalf (ignored, done elsewhere)."""

    event_id: str
    decision_id: str
    tip_id: str
    reaction: Literal["done", "ignored"]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Resend:
    """Publish again a decision the state holds unconfirmed, unless this process knows it
    is on its way or acknowledged (docs/adr/0010-decisions-before-state.md)."""

    entry: Unconfirmed


@dataclass(frozen=True, slots=True)
class Count:
    """Add `by` to the counter `metric` (labelled `label`=`value`)."""

    metric: str
    label: str = ""
    value: str = ""
    by: int = 1


Effect = SendDecision | SendReaction | Resend | TimerCommand | Count


@dataclass(frozen=True, slots=True)
class Step:
    """The person after the event, the effects in order, and, when the event was a
    trigger, the features it was judged on and what `decide` said."""

    person: Person
    effects: tuple[Effect, ...] = ()
    judged: UserFeatures | None = None
    result: Decision | Skip | None = None


# --- the step -----------------------------------------------------------------


def step(person: Person, event: Event, now: datetime, config: Config) -> Step:
    """Apply one event of one person at `now` (the engine's now: see agents/engine.py)."""
    if isinstance(event, Signalled):
        return _on_signal(person, event, now, config)
    if isinstance(event, Reacted):
        return _on_reaction(person, event.record, now)
    if isinstance(event, TimerDue):
        return _on_due(person, event, now, config)
    return _on_command(person, event.command)


def _on_signal(person: Person, event: Signalled, now: datetime, config: Config) -> Step:
    record, domain = event.record, event.domain
    if person.forgotten:
        # Published before the deletion, read after it: dropped, never folded back in.
        dropped = Count("oo_signals_forgotten_total", "domain", domain)
        if person.forgotten_at is None:
            return _forget(person, now, config, [dropped])  # an older version's marker
        return Step(person, (dropped,))
    before = person.features
    state, changed = fold(before, record, domain)
    if changed and state.deletion_requested:
        # Nothing of theirs goes out again: no re-sent decision either.
        return _forget(person, now, config, [Count("oo_signals_folded_total", "domain", domain)])
    effects: list[Effect] = [Resend(entry) for entry in person.outbox]
    if not changed:
        effects.append(Count("oo_signals_duplicate_total", "domain", domain))
        return Step(person, tuple(effects))
    effects.append(Count("oo_signals_folded_total", "domain", domain))
    if domain == "tasks" and record.change == "completed":
        effects.extend(_done_elsewhere(before, record))
    trigger = SignalTrigger(record, domain)
    judged = state
    state, result = _decide(state, trigger, now, config, effects)
    timers = _plan(person.timers, before, state, trigger, now, effects)
    return Step(Person(person.user_id, state, None, timers, person.outbox), tuple(effects),
                judged, result)


def _on_reaction(person: Person, record: Any, now: datetime) -> Step:
    """A reaction: clears the showing tip, moves fatigue, closes a done todo, and teaches
    the learned statistics (domain.learning); answers are counted by policy and group."""
    before = person.features
    if before is None or person.forgotten:
        return Step(person)  # nobody to teach, or a forgotten person's late reaction
    effects: list[Effect] = [Resend(entry) for entry in person.outbox]
    state, changed = apply_feedback(before, record.decision_id, record.reaction,
                                    record.occurred_at, tip_id=record.tip_id)
    effects.append(Count("oo_feedback_total" if changed else "oo_feedback_duplicate_total",
                         "reaction", record.reaction))
    if not changed:
        return Step(person, tuple(effects))
    effects.extend(_answer_counts(before, record.decision_id, record.reaction))
    if record.reaction == "seen" and record.dwell_ms is not None:
        effects.append(Count("oo_seen_with_dwell_total"))
        effects.append(Count("oo_seen_dwell_ms_total", by=record.dwell_ms))
    timers = _plan(person.timers, before, state, None, now, effects)
    return Step(Person(person.user_id, state, None, timers, person.outbox), tuple(effects))


def _on_command(person: Person, command: TimerCommand) -> Step:
    if person.forgotten:
        return Step(person)  # a late timer command of a deleted person must not bring them back
    timers = dict(person.timers)
    _apply(timers, command)
    return Step(Person(person.user_id, person.features, None, timers, person.outbox), (command,))


def _on_due(person: Person, event: TimerDue, now: datetime, config: Config) -> Step:
    stored = person.timers.get(event.timer_id)
    if stored is None or abs(float(stored[1]) - event.fire_at.timestamp()) > 1e-3:
        # Already fired, moved or cancelled: a duplicate firing is a no-op, except that a
        # redelivered firing whose decision a crash left unconfirmed sends it.
        stale = Count("oo_timers_stale_total", "purpose", event.purpose)
        if person.forgotten:
            return Step(person, (stale,))
        return Step(person, (*(Resend(entry) for entry in person.outbox), stale))
    fired = Count("oo_timers_fired_total", "purpose", event.purpose)
    if event.purpose == FORGET:
        # The forget window is over: nothing of the person is kept.
        return Step(Person(person.user_id), (fired, Count("oo_users_purged_total")))
    timers: Mapping[str, Timer] = {k: v for k, v in person.timers.items() if k != event.timer_id}
    before = person.features
    if before is None or person.forgotten:
        return Step(Person(person.user_id, before, person.forgotten_at, timers, person.outbox),
                    (fired,))
    effects: list[Effect] = [*(Resend(entry) for entry in person.outbox), fired]
    trigger = TimerFired(event.timer_id, event.purpose, event.fire_at, event.ref)
    state: UserFeatures = before
    judged = result = None
    if event.purpose == "tip_expired":
        if tip_expired_unanswered(before, event.ref):
            ref = event.ref or ""
            state, _ = apply_feedback(before, ref, "ignored", now)
            effects.extend(_answer_counts(before, ref, "ignored"))
            showing = before.showing
            effects.append(SendReaction(f"ignored-{event.ref}", ref,
                                        showing.tip_id if showing else "?", "ignored", now))
    else:
        judged = before
        state, result = _decide(before, trigger, now, config, effects)
    timers = _plan(timers, before, state, trigger, now, effects)
    return Step(Person(person.user_id, state, None, timers, person.outbox), tuple(effects),
                judged, result)


# --- parts ------------------------------------------------------------------------


def _decide(state: UserFeatures, trigger: Trigger, now: datetime, config: Config,
            effects: list[Effect]) -> tuple[UserFeatures, Decision | Skip]:
    result = decide(state, trigger, now, policy=config.policy,
                    shadow_policies=config.shadow_policies)
    if not isinstance(result, Decision):
        effects.append(Count("oo_skips_total", "why", result.guard or result.stage))
        if result.point is not None:
            # The policy chose no tip now: a decision point learning must see.
            effects.append(Count("oo_quiet_total", "policy", result.policy or ""))
            state = record_quiet(state, result.decision_id, now, dict(result.point))
        return state, result
    effects.append(SendDecision(result))
    effects.append(Count("oo_decisions_total", "moment", result.moment))
    effects.append(Count("oo_decisions_by_policy_total", "policy", result.policy))
    state, _ = apply_decision(state, result.decision_id, result.tip.id, result.tip.kind, now,
                              result.expires_at, moment=result.moment, group=result.group,
                              policy=result.policy)
    return state, result


def _done_elsewhere(before: UserFeatures | None, task: Any) -> list[Effect]:
    """The todo on screen was completed at its source: answer its tip as done.

    The reaction closes the tip's notification on every device and on open
    pages (the notifier hears it), and teaches like a tap on the tip would.
    """
    showing = before.showing if before is not None else None
    if showing is None or showing.tip_id != f"{TODO_TIP_PREFIX}{task.task_id}":
        return []
    return [SendReaction(f"done-elsewhere-{showing.decision_id}", showing.decision_id,
                         showing.tip_id, "done", task.occurred_at),
            Count("oo_tips_done_elsewhere_total")]


def _answer_counts(before: UserFeatures, decision_id: str, reaction: str) -> list[Effect]:
    """Global statistics of answers, by policy and by arm group (this worker's share).

    With the reward table (domain.reward) they give each policy's live reward
    and acceptance rate, and per-group answer rates (priors).
    """
    sent = next((s for s in before.learned.sent() if s.decision_id == decision_id), None)
    if sent is None or not is_answer(reaction):
        return []
    return [Count("oo_answers_total", "policy_reaction", f"{sent.policy}/{reaction}"),
            Count("oo_answers_by_group_total", "group_reaction", f"{sent.group}/{reaction}")]


def _plan(timers: Mapping[str, Timer], before: UserFeatures | None, after: UserFeatures,
          trigger: Trigger | None, now: datetime, effects: list[Effect]) -> Mapping[str, Timer]:
    commands = plan_timers(before, after, trigger, now)
    if not commands:
        return timers
    planned = dict(timers)
    for command in commands:
        _apply(planned, command)
    effects.extend(commands)
    return planned


def _apply(timers: dict[str, Timer], command: TimerCommand) -> None:
    if command.action == "set":
        timers[command.timer_id] = (command.purpose, command.fire_at.timestamp(), command.ref)
    else:
        timers.pop(command.timer_id, None)


def _forget(person: Person, now: datetime, config: Config, effects: list[Effect]) -> Step:
    """Deletion requested: a forgotten marker, and one timer that purges it when the
    forget window ends (docs/adr/0012-durable-forgetting.md)."""
    purge = forget_timer(person.user_id, now, config.forget_window_s)
    forgotten = Person(person.user_id, None, seconds(now),
                       {purge.timer_id: (purge.purpose, purge.fire_at.timestamp(), purge.ref)})
    return Step(forgotten, (*effects, Count("oo_users_forgotten_total"), purge))
