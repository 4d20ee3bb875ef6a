"""The engine agent: signals and timers in, per-user state and tip decisions out.

One agent per user partition reads the signal topics, `oo.timers` and
`oo.feedback`, and does, for each event, in order: validate, fold into the
`features` table, decide (`domain.decide`), plan timers
(`domain.timers`), and write the tables once. Keeping the steps together keeps
one person's events strictly ordered and their state consistent
(docs/adr/0005-one-engine-agent.md). All decisions are pure functions; this
module only reads and writes tables and topics. Feedback is folded into the
person's learned statistics, and a decision point where the policy chose no
tip is kept in the features until the next decision carries it
(docs/adr/0007-learned-policy.md).

The engine's `now` is the later of the wall clock and the trigger's own time
(a signal's `occurred_at`, a timer's `fire_at`): late events are judged late,
and simulated events from the future are judged at their own time.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from datetime import UTC, datetime
from typing import Any, cast

import faust

from agents.counters import Counters
from agents.deadletters import DeadLetterSink
from agents.state import Entry, Unconfirmed, dump_forgotten, dump_state, load_entry
from agents.schedule import TimerSchedule, decode_entry, encode_entry
from domain.decide import Decision, decide
from domain.features import (
    TODO_TIP_PREFIX,
    UserFeatures,
    apply_decision,
    apply_feedback,
    fold,
    record_quiet,
)
from domain.moments import SignalTrigger, TimerFired, Trigger
from domain.reward import is_answer
from domain.clock import seconds
from domain.timers import FORGET, TimerCommand, forget_timer, plan_timers, tip_expired_unanswered
from oo.settings import Settings
from topics.catalog import FEEDBACK, SIGNALS, TIMERS, TIPS_DECIDED
from topics.codec import InvalidRecord, decode, encode
from topics.records import FeedbackGiven, Tip, TimerScheduled, TipDecided
from topics.validation import decode_event

log = logging.getLogger(__name__)
FEATURES_TABLE = "features"
TIMERS_TABLE = "timers"
SOURCE = "oo.engine"
DOMAIN_BY_TOPIC = {spec.name: domain for domain, spec in SIGNALS.items()}
# Decisions acknowledged by the broker whose person's state still lists them (bounded: a
# forgotten acknowledgement only means one harmless re-send of the same decision).
ACKED_MEMORY = 65536
# Unconfirmed decisions kept per person (each is one decision record, ~1-3 KB).
OUTBOX_LIMIT = 8


def _raw(app: faust.App, name: str, partitions: int | None = None) -> Any:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)


class Engine:
    """Holds the tables and output topics; `handle` processes one message."""

    def __init__(self, app: faust.App, settings: Settings, dead: DeadLetterSink,
                 counters: Counters) -> None:
        partitions = settings.topic_partitions
        # Raw bytes both ways: keys are the user_id as sent on the topics, values
        # our own compact JSON, so nothing Faust-specific lands in changelogs.
        self.features = app.Table(FEATURES_TABLE, default=None, partitions=partitions,
                                  key_type=bytes, value_type=bytes)
        self.timers = app.Table(TIMERS_TABLE, default=None, partitions=partitions,
                                key_type=bytes, value_type=bytes)
        self.decided = _raw(app, TIPS_DECIDED.name)
        self.feedback = _raw(app, FEEDBACK.name)
        self.timer_topic = _raw(app, TIMERS.name)
        self.schedule = TimerSchedule()
        self.forget_window_s = settings.forget_window_s
        # The outbox protocol (docs/adr/0010-decisions-before-state.md): decision ids sent by
        # this process and awaiting the broker, and those acknowledged (oldest first).
        self.inflight: set[str] = set()
        self.acked: dict[str, None] = {}
        self.policy = settings.policy
        self.shadow = settings.shadow_policies
        self.dead = dead
        self.counters = counters

    # --- one message ----------------------------------------------------

    async def handle(self, message: faust.types.Message) -> None:
        """Process one message of a signal topic or oo.timers; never raises for bad input."""
        try:
            if message.topic == FEEDBACK.name:
                reaction = decode_event(FEEDBACK, message.key, message.value)
                await self._on_feedback(message, cast(FeedbackGiven, reaction))
            elif message.topic == TIMERS.name:
                command = decode(TimerScheduled, message.value)
                if message.key != command.user_id.encode():
                    raise InvalidRecord("message key is not the record's user_id")
                await self._on_timer(message, command)
            else:
                domain = DOMAIN_BY_TOPIC[message.topic]
                record = decode_event(SIGNALS[domain], message.key, message.value)
                await self._on_signal(message, record, domain)
        except InvalidRecord as err:
            await self.dead.put(message, err.reason)
        except Exception as err:  # a bug must not kill the agent nor lose the event
            log.exception("engine failed on %s[%s]@%s", message.topic, message.partition,
                          message.offset)
            self.counters.inc("oo_agent_errors_total", "agent", "engine")
            await self.dead.put(message, f"processing failed: {type(err).__name__}: {err}")

    async def _on_signal(self, message: Any, record: Any, domain: str) -> None:
        key = message.key
        entry = load_entry(self.features.get(key))
        if entry.forgotten:
            # Published before the deletion, read after it: dropped, never folded back in.
            self.counters.inc("oo_signals_forgotten_total", "domain", domain)
            if entry.forgotten_at is None:
                self._forget(message, key, _later(record.occurred_at))  # an older version's marker
            return
        before, outbox = entry.state, entry.outbox
        state, changed = fold(before, record, domain)
        if changed and state.deletion_requested:
            self.counters.inc("oo_signals_folded_total", "domain", domain)
            self._forget(message, key, _later(record.occurred_at))  # nothing re-sent for them
            return
        await self._resend(key, entry)
        if not changed:
            self.counters.inc("oo_signals_duplicate_total", "domain", domain)
            return
        self.counters.inc("oo_signals_folded_total", "domain", domain)
        if domain == "tasks" and record.change == "completed":
            await self._done_elsewhere(before, record)
        now = _later(record.occurred_at)
        state = await self._decide(state, SignalTrigger(record, domain), now,
                                   propagated(message.headers), outbox)
        await self._plan(message, key, before, state, SignalTrigger(record, domain), now)
        self._store(key, state, outbox)

    async def _on_feedback(self, message: Any, record: FeedbackGiven) -> None:
        """A reaction: clears the showing tip, moves fatigue, closes a done todo, and
        teaches the learned statistics (domain.learning); answers are counted by policy."""
        key = message.key
        entry = load_entry(self.features.get(key))
        before, outbox = entry.state, entry.outbox
        if before is None or entry.forgotten:
            return  # nobody to teach, or a forgotten person's late reaction
        await self._resend(key, entry)
        now = _later(record.occurred_at)
        state, changed = apply_feedback(before, record.decision_id, record.reaction,
                                        record.occurred_at, tip_id=record.tip_id)
        self.counters.inc("oo_feedback_total" if changed else "oo_feedback_duplicate_total",
                          "reaction", record.reaction)
        if changed:
            self._count_answer(before, record.decision_id, record.reaction)
            if record.reaction == "seen" and record.dwell_ms is not None:
                self.counters.inc("oo_seen_with_dwell_total")
                self.counters.inc("oo_seen_dwell_ms_total", by=record.dwell_ms)
            await self._plan(message, key, before, state, None, now)
            self._store(key, state, outbox)

    async def _on_timer(self, message: Any, command: TimerScheduled) -> None:
        key = message.key
        entry = load_entry(self.features.get(key))
        _, timers = decode_entry(self.timers.get(key))
        if command.action in ("set", "cancel"):
            if entry.forgotten:
                return  # a late timer command of a deleted person must not bring them back
            self._apply_commands(message, key, [TimerCommand(
                command.action, command.timer_id, command.purpose, command.fire_at, command.ref)])
            return
        stored = timers.get(command.timer_id)
        if stored is None or abs(float(stored[1]) - command.fire_at.timestamp()) > 1e-3:
            self.counters.inc("oo_timers_stale_total", "purpose", command.purpose)
            # Already fired, moved or cancelled: a duplicate firing is a no-op, except that a
            # redelivered firing whose decision a crash left unconfirmed sends it (_resend).
            if not entry.forgotten:
                await self._resend(key, entry)
            return
        self.counters.inc("oo_timers_fired_total", "purpose", command.purpose)
        if command.purpose == FORGET:
            self._purge(key)
            return
        del timers[command.timer_id]
        self.timers[key] = encode_entry(message.partition, timers)
        before, outbox = entry.state, entry.outbox
        if before is None or entry.forgotten:
            return
        await self._resend(key, entry)
        trigger = TimerFired(command.timer_id, command.purpose, command.fire_at, command.ref)
        now = _later(command.fire_at)
        if command.purpose == "tip_expired":
            state = before
            if tip_expired_unanswered(before, command.ref):
                state, _ = apply_feedback(before, command.ref or "", "ignored", now)
                self._count_answer(before, command.ref or "", "ignored")
                await self._ignored(before, command, now)
        else:
            state = await self._decide(before, trigger, now, propagated(message.headers), outbox)
        await self._plan(message, key, before, state, trigger, now)
        self._store(key, state, outbox)

    # --- steps ----------------------------------------------------------

    async def _decide(self, state: UserFeatures, trigger: Trigger, now: datetime,
                      headers: list[tuple[str, bytes]], outbox: list[Unconfirmed]) -> UserFeatures:
        result = decide(state, trigger, now, policy=self.policy, shadow_policies=self.shadow)
        if not isinstance(result, Decision):
            self.counters.inc("oo_skips_total", "why", result.guard or result.stage)
            log.debug("%s %s", state.user_id, result)
            if result.point is not None:
                # The policy chose no tip now: a decision point learning must see.
                self.counters.inc("oo_quiet_total", "policy", result.policy or "")
                state = record_quiet(state, result.decision_id, now, dict(result.point))
            return state
        record = TipDecided(
            event_id=result.decision_id, user_id=state.user_id, occurred_at=now, source=SOURCE,
            decision_id=result.decision_id, triggered_by=result.triggered_by,
            moment=result.moment, policy=result.policy, propensity=result.propensity,
            reason=result.reason, tip=Tip(**result.tip.to_dict()),
            context_snapshot=dict(result.context_snapshot), expires_at=result.expires_at,
        )
        value = encode(record)
        await self._publish(state.user_id.encode(), result.decision_id, value, headers)
        outbox.append(Unconfirmed(result.decision_id, value.decode()))
        self.counters.inc("oo_decisions_total", "moment", result.moment)
        self.counters.inc("oo_decisions_by_policy_total", "policy", result.policy)
        log.info("decided %s for %s: %s", result.decision_id, state.user_id, result.reason)
        state, _ = apply_decision(state, result.decision_id, result.tip.id, result.tip.kind, now,
                                  result.expires_at, moment=result.moment, group=result.group,
                                  policy=result.policy)
        return state

    def _count_answer(self, before: UserFeatures, decision_id: str, reaction: str) -> None:
        """Global statistics of answers, by policy and by arm group (this worker's share).

        With the reward table (domain.reward) they give each policy's live
        reward and acceptance rate, and per-group answer rates (priors).
        """
        sent = next((s for s in before.learned.sent() if s.decision_id == decision_id), None)
        if sent is None or not is_answer(reaction):
            return
        self.counters.inc("oo_answers_total", "policy_reaction", f"{sent.policy}/{reaction}")
        self.counters.inc("oo_answers_by_group_total", "group_reaction", f"{sent.group}/{reaction}")

    async def _done_elsewhere(self, before: UserFeatures | None, task: Any) -> None:
        """The todo on screen was completed at its source: answer its tip as done.

        The feedback closes the tip's notification on every device and on open
        pages (the notifier hears it), and teaches like a tap on the tip would.
        """
        showing = before.showing if before is not None else None
        if showing is None or showing.tip_id != f"{TODO_TIP_PREFIX}{task.task_id}":
            return
        record = FeedbackGiven(
            event_id=f"done-elsewhere-{showing.decision_id}", user_id=task.user_id,
            occurred_at=task.occurred_at, source=SOURCE, decision_id=showing.decision_id,
            tip_id=showing.tip_id, reaction="done")
        await self.feedback.send(key=task.user_id.encode(), value=encode(record))
        self.counters.inc("oo_tips_done_elsewhere_total")

    async def _ignored(self, state: UserFeatures, command: TimerScheduled, now: datetime) -> None:
        showing = state.showing
        record = FeedbackGiven(
            event_id=f"ignored-{command.ref}", user_id=state.user_id, occurred_at=now,
            source=SOURCE, decision_id=command.ref or "", tip_id=showing.tip_id if showing else "?",
            reaction="ignored",
        )
        await self.feedback.send(key=state.user_id.encode(), value=encode(record))

    async def _plan(self, message: Any, key: bytes, before: UserFeatures | None,
                    after: UserFeatures, trigger: Trigger | None, now: datetime) -> None:
        commands = plan_timers(before, after, trigger, now)
        if commands:
            self._apply_commands(message, key, commands)

    def _apply_commands(self, message: Any, key: bytes, commands: list[TimerCommand]) -> None:
        _, timers = decode_entry(self.timers.get(key))
        for command in commands:
            if command.action == "set":
                timers[command.timer_id] = [command.purpose, command.fire_at.timestamp(),
                                            command.ref]
            else:
                timers.pop(command.timer_id, None)
        if timers:
            self.timers[key] = encode_entry(message.partition, timers)
        elif key in self.timers:
            del self.timers[key]
        self.schedule.replace_user(key, message.partition, timers)

    def _forget(self, message: Any, key: bytes, now: datetime) -> None:
        """Deletion requested: the person's state becomes a forgotten marker, their timers
        only the one that purges it (docs/adr/0012-durable-forgetting.md).

        The marker holds the deletion time and nothing else. While it stands, late
        signals, reactions and timer commands of theirs (published before the
        deletion, read after it, by this worker or the partition's next owner) are
        dropped. When the forget window ends, `_purge` leaves tombstones only.
        """
        purge = forget_timer(key.decode(), now, self.forget_window_s)
        timers = {purge.timer_id: [purge.purpose, purge.fire_at.timestamp(), purge.ref]}
        self.features[key] = dump_forgotten(seconds(now))
        self.timers[key] = encode_entry(message.partition, timers)
        self.schedule.replace_user(key, message.partition, timers)
        self.counters.inc("oo_users_forgotten_total")

    def _purge(self, key: bytes) -> None:
        """The forget window is over: tombstones for the person in both tables."""
        if key in self.timers:
            del self.timers[key]
        if key in self.features:
            del self.features[key]
        self.schedule.drop_user(key)
        self.counters.inc("oo_users_purged_total")

    async def _resend(self, key: bytes, entry: Entry) -> None:
        """Publish again the person's unconfirmed decisions that no send of this process
        accounts for (a crashed or previous owner's), so a decision the state records is
        never lost (docs/adr/0010-decisions-before-state.md). Called on every load of a
        person who is not being forgotten, duplicates and stale firings included."""
        for unconfirmed in entry.outbox:
            if unconfirmed.decision_id not in self.inflight and \
                    unconfirmed.decision_id not in self.acked:
                await self._publish(key, unconfirmed.decision_id, unconfirmed.record.encode(), [])
                self.counters.inc("oo_decisions_resent_total")
                log.info("re-sent unconfirmed decision %s for %s", unconfirmed.decision_id,
                         key.decode(errors="replace"))

    def _store(self, key: bytes, state: UserFeatures, outbox: list[Unconfirmed]) -> None:
        """Write the state with the decisions the broker has not confirmed yet."""
        pending = []
        for entry in outbox:
            if entry.decision_id in self.acked:
                del self.acked[entry.decision_id]  # confirmed: the state need not carry it
            else:
                pending.append(entry)
        if len(pending) > OUTBOX_LIMIT:
            log.warning("%d unconfirmed decisions for %s: keeping the newest %d", len(pending),
                        key.decode(errors="replace"), OUTBOX_LIMIT)
            pending = pending[-OUTBOX_LIMIT:]
        self.features[key] = dump_state(state, pending)

    async def _publish(self, key: bytes, decision_id: str, value: bytes,
                       headers: list[tuple[str, bytes]]) -> None:
        """Send a decision; its acknowledgement (or failure) is noted when the broker answers."""
        future = await self.decided.send(key=key, value=value, headers=headers or None)
        self.inflight.add(decision_id)
        future.add_done_callback(partial(self._answered, decision_id))

    def _answered(self, decision_id: str, future: Any) -> None:
        self.inflight.discard(decision_id)
        if future.cancelled() or future.exception() is not None:
            return  # not confirmed: the next load of the person sends it again
        self.acked[decision_id] = None
        if len(self.acked) > ACKED_MEMORY:
            del self.acked[next(iter(self.acked))]

    # --- the firing loop ------------------------------------------------

    async def fire_due(self, app: faust.App) -> None:
        """Send a `fire` command for every due timer of the partitions this worker owns."""
        recovery = getattr(app.tables, "recovery", None)
        if recovery is None or not recovery.completed.is_set() or getattr(app, "rebalancing", False):
            return
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == TIMERS.name}
        if owned != self.schedule.partitions:
            self.schedule.rebuild(self.timers.items(), owned)
            log.info("timer schedule rebuilt: %d timers on partitions %s", len(self.schedule),
                     sorted(owned))
        for due in self.schedule.pop_due(time.time()):
            record = TimerScheduled(
                event_id=f"fire-{due.timer_id}-{int(due.fire_at)}",
                user_id=due.user_key.decode(), occurred_at=datetime.now(UTC), source=SOURCE,
                action="fire", timer_id=due.timer_id, purpose=due.purpose,  # type: ignore[arg-type]
                fire_at=datetime.fromtimestamp(due.fire_at, UTC), ref=due.ref,
            )
            await self.timer_topic.send(key=due.user_key, value=encode(record))


def propagated(headers: Any) -> list[tuple[str, bytes]]:
    """Headers a decision inherits from its trigger: the W3C `traceparent` and `oo-*` ones.

    Lets a trace (and the benchmark's send timestamp) follow a signal to its decision.
    """
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v)) for k, v in items
            if v is not None and (k == "traceparent" or str(k).startswith("oo-"))][:8]


def _later(when: datetime) -> datetime:
    """The engine's now: the wall clock, or the trigger's own time if that is later."""
    wall = datetime.now(UTC)
    return when if when > wall else wall


def register(app: faust.App, settings: Settings, dead: DeadLetterSink, counters: Counters) -> Engine:
    """Declare the engine's topics, tables, agent and timer loop on `app`."""
    engine = Engine(app, settings, dead, counters)
    source = app.topic(
        *(spec.name for spec in SIGNALS.values()), TIMERS.name, FEEDBACK.name,
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.topic_partitions,
    )

    @app.agent(source, name="oo.agents.engine")
    async def engine_agent(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await engine.handle(event.message)

    @app.timer(interval=1.0)
    async def fire_timers() -> None:
        await engine.fire_due(app)

    return engine
