"""The engine agent: signals, reactions and timers in, per-user state and tip decisions out.

One agent per user partition reads the signal topics, `oo.timers` and
`oo.feedback`. For each message it validates the record, loads the person
(their `features` and `timers` entries), runs the pure step
(`domain.step.step`: fold, decide, plan timers, forget), carries out the
step's effects (decisions, reactions and re-sent decisions published,
counters), and writes each table entry the step changed. Keeping the steps
together keeps one person's events strictly ordered and their state
consistent (docs/adr/0005-one-engine-agent.md). This module holds no rule of
the domain: it only reads and writes tables and topics.

The engine's `now` is the later of the wall clock and the trigger's own time
(a signal's `occurred_at`, a timer's `fire_at`): late events are judged late,
and simulated events from the future are judged at their own time.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust

from agents.counters import Counters
from agents.deadletters import DeadLetterSink
from agents.schedule import TimerSchedule, decode_entry, encode_entry
from agents.state import Unconfirmed, dump_forgotten, dump_state, load_entry
from domain.decide import Decision, Skip
from domain.step import (
    Config,
    Count,
    Event,
    Person,
    Reacted,
    Resend,
    SendDecision,
    SendReaction,
    Signalled,
    Step,
    TimerCommanded,
    TimerDue,
    step,
)
from domain.timers import TimerCommand
from oo.settings import Settings
from topics.catalog import FEEDBACK, SIGNALS, TIMERS, TIPS_DECIDED
from topics.codec import InvalidRecord, decode, encode
from topics.records import FeedbackGiven, TimerScheduled, Tip, TipDecided
from topics.validation import check_times, decode_event

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
        self.config = Config(settings.policy, settings.shadow_policies, settings.forget_window_s)
        # The outbox protocol (docs/adr/0010-decisions-before-state.md): decision ids sent by
        # this process and awaiting the broker, and those acknowledged (oldest first).
        self.inflight: set[str] = set()
        self.acked: dict[str, None] = {}
        # Sends the broker refused: published again by the retry loop, without waiting for
        # the person's next event (their input offset may be committed already).
        self.failed: dict[str, tuple[bytes, bytes]] = {}
        self.dead = dead
        self.counters = counters

    # --- one message ----------------------------------------------------

    async def handle(self, message: faust.types.Message) -> None:
        """Process one message of a signal topic, oo.timers or oo.feedback; never raises
        for bad input (it goes to the dead letters, with the reason)."""
        try:
            event, now = read(message)
            before = self._load(cast(bytes, message.key))  # read() checked it is the user_id
            result = step(before, event, now, self.config)
            await self._carry_out(message, before, result)
        except InvalidRecord as err:
            await self.dead.put(message, err.reason)
        except Exception as err:  # a bug must not kill the agent nor lose the event
            log.exception("engine failed on %s[%s]@%s", message.topic, message.partition,
                          message.offset)
            self.counters.inc("oo_agent_errors_total", "agent", "engine")
            await self.dead.put(message, f"processing failed: {type(err).__name__}: {err}")

    def _load(self, key: bytes) -> Person:
        """The person as the two tables hold them."""
        return person_of(key, self.features.get(key), self.timers.get(key))

    async def _carry_out(self, message: Any, before: Person, result: Step) -> None:
        """The step's effects, in order, then its table writes."""
        key = message.key
        outbox = list(result.person.outbox)
        for effect in result.effects:
            if isinstance(effect, Count):
                self.counters.inc(effect.metric, effect.label, effect.value, by=effect.by)
            elif isinstance(effect, Resend):
                await self._resend(key, effect.entry)
            elif isinstance(effect, SendDecision):
                outbox.append(await self._send_decision(effect, message.headers))
            elif isinstance(effect, SendReaction):
                record = FeedbackGiven(
                    event_id=effect.event_id, user_id=result.person.user_id,
                    occurred_at=effect.occurred_at, source=SOURCE,
                    decision_id=effect.decision_id, tip_id=effect.tip_id,
                    reaction=effect.reaction)
                await self.feedback.send(key=key, value=encode(record))
            # Timer commands are in the person's timers already; the schedule follows below.
        if isinstance(result.result, Skip):
            log.debug("%s %s", result.person.user_id, result.result)
        self._store(key, message.partition, before, result.person, outbox)

    async def _send_decision(self, effect: SendDecision,
                             headers: Any) -> Unconfirmed:
        decision = effect.decision
        value = encode(decision_record(decision))
        await self._publish(decision.user_id.encode(), decision.decision_id, value,
                            propagated(headers))
        log.info("decided %s for %s: %s", decision.decision_id, decision.user_id,
                 decision.reason)
        return Unconfirmed(decision.decision_id, value.decode())

    async def _resend(self, key: bytes, entry: Unconfirmed) -> None:
        """Publish again an unconfirmed decision of the person's state that no send of this
        process accounts for (a crashed or previous owner's), so a decision the state
        records is never lost (docs/adr/0010-decisions-before-state.md)."""
        if entry.decision_id in self.inflight or entry.decision_id in self.acked:
            return
        await self._publish(key, entry.decision_id, entry.record.encode(), [])
        self.counters.inc("oo_decisions_resent_total")
        log.info("re-sent unconfirmed decision %s for %s", entry.decision_id,
                 key.decode(errors="replace"))

    def _store(self, key: bytes, partition: int, before: Person, after: Person,
               outbox: list[Unconfirmed]) -> None:
        """Write each table entry the step changed; a person who is nobody has none."""
        if after.timers is not before.timers:
            if after.timers:
                self.timers[key] = encode_entry(partition, after.timers)
            elif key in self.timers:
                del self.timers[key]
            self.schedule.replace_user(key, partition, after.timers)
        if after.forgotten_at is not None:
            if after.forgotten_at != before.forgotten_at:
                self.features[key] = dump_forgotten(after.forgotten_at)
                for decision_id in [d for d, (k, _) in self.failed.items() if k == key]:
                    del self.failed[decision_id]  # nothing of theirs goes out again
        elif after.features is None:
            if key in self.features:
                del self.features[key]
        elif after.features is not before.features or len(outbox) != len(after.outbox):
            self.features[key] = dump_state(after.features, self._pending(key, outbox))

    def _pending(self, key: bytes, outbox: list[Unconfirmed]) -> list[Unconfirmed]:
        """The decisions the state must still carry: those the broker has not confirmed."""
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
        return pending

    async def _publish(self, key: bytes, decision_id: str, value: bytes,
                       headers: list[tuple[str, bytes]]) -> None:
        """Send a decision; its acknowledgement (or failure) is noted when the broker answers."""
        future = await self.decided.send(key=key, value=value, headers=headers or None)
        self.inflight.add(decision_id)
        future.add_done_callback(partial(self._answered, decision_id, key, value))

    def _answered(self, decision_id: str, key: bytes, value: bytes, future: Any) -> None:
        self.inflight.discard(decision_id)
        if future.cancelled() or future.exception() is not None:
            # Not confirmed. Faust's commit waits for the send to finish, not to succeed,
            # so the trigger may never be read again: the retry loop sends it again.
            if len(self.failed) < ACKED_MEMORY:
                self.failed[decision_id] = (key, value)
            log.warning("decision %s was not accepted by the broker; it will be sent again",
                        decision_id)
            return
        self.failed.pop(decision_id, None)
        self.acked[decision_id] = None
        if len(self.acked) > ACKED_MEMORY:
            del self.acked[next(iter(self.acked))]

    async def resend_failed(self) -> None:
        """Publish again every decision whose send the broker refused (same id, same bytes)."""
        for decision_id, (key, value) in list(self.failed.items()):
            del self.failed[decision_id]
            if decision_id in self.inflight or decision_id in self.acked:
                continue
            await self._publish(key, decision_id, value, [])
            self.counters.inc("oo_decisions_resent_total")

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


def person_of(key: bytes, features: bytes | None, timers: bytes | None) -> Person:
    """The person as a `features` and a `timers` table value hold them."""
    entry = load_entry(features)
    _, stored = decode_entry(timers)
    return Person(key.decode(), entry.state, entry.forgotten_at,
                  {k: (str(v[0]), float(v[1]), v[2]) for k, v in stored.items()},
                  tuple(entry.outbox))


def decision_record(decision: Decision) -> TipDecided:
    """The `oo.tips.decided` record of a decision."""
    return TipDecided(
        event_id=decision.decision_id, user_id=decision.user_id,
        occurred_at=decision.decided_at, source=SOURCE, decision_id=decision.decision_id,
        triggered_by=decision.triggered_by, moment=decision.moment, policy=decision.policy,
        propensity=decision.propensity, reason=decision.reason,
        tip=Tip(**decision.tip.to_dict()), context_snapshot=dict(decision.context_snapshot),
        expires_at=decision.expires_at,
    )


def read(message: Any) -> tuple[Event, datetime]:
    """The step's event for a consumed message, and the engine's now for it.

    Raises InvalidRecord for a record that fails validation.
    """
    if message.topic == FEEDBACK.name:
        reaction = cast(FeedbackGiven, decode_event(FEEDBACK, message.key, message.value))
        return Reacted(reaction), _later(reaction.occurred_at)
    if message.topic == TIMERS.name:
        command = decode(TimerScheduled, message.value)
        if message.key != command.user_id.encode():
            raise InvalidRecord("message key is not the record's user_id")
        check_times(command)  # a fire time no clock can hold is a dead letter, not a crash
        if command.action == "fire":
            return (TimerDue(command.timer_id, command.purpose, command.fire_at, command.ref),
                    _later(command.fire_at))
        return (TimerCommanded(TimerCommand(command.action, command.timer_id, command.purpose,
                                            command.fire_at, command.ref)),
                _later(command.occurred_at))
    domain = DOMAIN_BY_TOPIC[message.topic]
    record = decode_event(SIGNALS[domain], message.key, message.value)
    return Signalled(record, domain), _later(record.occurred_at)


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

    @app.timer(interval=1.0)
    async def resend_failed() -> None:
        await engine.resend_failed()

    return engine
