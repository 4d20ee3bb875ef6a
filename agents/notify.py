"""The notify agent: each TipDecided becomes a tip instance and a Web Push per device.

For each decision, in order per person: record the tip instance and one
pending delivery per subscription (one transaction, idempotent on the
decision id), push to every pending subscription concurrently, record each
outcome as soon as it is known, and withdraw the older tips this one
replaced. A failure of PostgreSQL is retried with backoff until it succeeds
(the decision is never dropped); push-service answers are classified by
`domain.push`.

After a crash Kafka hands the worker every decision since its last commit
again. A push whose outcome was recorded is not sent again, and one never
sent is sent then. Only a push in flight at the crash (the push service may
have accepted it, its answer not yet recorded) can reach a device twice: Web
Push has no idempotency key, so no sender can tell it from one that was lost.
Recording each outcome the moment it arrives, rather than after the slowest
device of the decision answers, keeps that window to one request and its record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import faust
from mode import Service

from adapters.db import UNAVAILABLE
from adapters.endpoints import EndpointPolicy, guarded_connector
from adapters.tips import PendingPush, Recorded, TipStore
from adapters.webpush import PushSender
from agents.counters import Counters
from agents.deadletters import DeadLetterSink
from domain.push import Expired, PushOutcome, PushPlan, plan_tip, plan_withdrawal
from oo import logs
from oo.settings import Settings
from oo.vapid import generate_keys, load_vapid
from topics import trace
from topics.catalog import FEEDBACK, TIPS_DECIDED
from topics.codec import InvalidRecord
from topics.records import FeedbackGiven, TipDecided
from topics.validation import decode_event

log = logging.getLogger(__name__)
RETRY_CAP_S = 30.0
# Answers that make a shown tip stale on the person's other devices ("seen" and
# "delivered" do not).
CLOSING_REACTIONS = frozenset({"done", "ack", "save", "snooze", "dismiss", "ignored"})


class Notifier(Service):
    """Owns the database pool, the HTTP session and the push sender of the worker."""

    def __init__(self, settings: Settings, counters: Counters, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.counters = counters
        self.pool: asyncpg.Pool | None = None
        self.session: aiohttp.ClientSession | None = None
        self.store: TipStore | None = None
        self.sender: PushSender | None = None

    async def on_start(self) -> None:
        settings = self.settings
        if settings.env != "production" and not settings.vapid_private_key.exists():
            generate_keys(settings.vapid_private_key)  # dev and test: a key of their own
            log.info("generated a VAPID key at %s", settings.vapid_private_key)
        vapid = load_vapid(settings.vapid_private_key)  # a bad key stops the worker, clearly
        policy = EndpointPolicy.for_env(settings.env, extra=settings.push_extra_hosts)
        self.pool = await asyncpg.create_pool(settings.database_url, min_size=0, max_size=5)
        self.session = aiohttp.ClientSession(
            connector=guarded_connector(policy, ssl=_ssl_context(settings)))
        self.store = TipStore(self.pool)
        self.sender = PushSender(self.session, vapid_key=vapid,
                                 vapid_subject=settings.vapid_subject, policy=policy)

    async def on_stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.pool is not None:
            await self.pool.close()

    async def deliver(self, decided: TipDecided) -> None:
        """Record and push one decision; returns when every outcome is recorded."""
        assert self.store is not None and self.sender is not None, "notifier not started"
        store = self.store
        recorded: Recorded = await _retrying(lambda: store.record_decision(decided), "record")
        if not recorded.known_user:
            self.counters.inc("oo_pushes_total", "status", "no_account")
            return
        if not recorded.new:
            self.counters.inc("oo_notify_redelivered_total")  # e.g. after a crash or rebalance
        plan = plan_tip(decided, datetime.now(UTC))
        if isinstance(plan, Expired):
            self.counters.inc("oo_pushes_total", "status", "expired")
            log.info("not pushing %s: %s", decided.decision_id, plan.reason)
        else:
            async with asyncio.TaskGroup() as group:
                for push in recorded.pending:
                    group.create_task(self._push(push, plan))
        if recorded.withdrawals:  # owed even when the new tip itself went stale
            await self._withdraw(decided.user_id, recorded.withdrawals)

    async def close(self, feedback: FeedbackGiven) -> None:
        """An answer (from any device) or an expiry: close the tip's notification everywhere."""
        if feedback.reaction not in CLOSING_REACTIONS:
            return
        assert self.store is not None
        store = self.store
        owed = await _retrying(lambda: store.close_answered(
            feedback.event_id, feedback.decision_id, feedback.user_id, feedback.reaction),
            "close")
        if owed:
            await self._withdraw(feedback.user_id, owed)

    async def _push(self, push: PendingPush, plan: PushPlan) -> None:
        """Send one push and record its outcome at once, not after its sibling pushes:
        a crash while another device is slow must not leave this one to be sent again."""
        assert self.sender is not None
        outcome = await self.sender.send_plan(push, plan)
        await _retrying(lambda: self._record(push, outcome), "mark")

    async def _record(self, push: PendingPush, outcome: PushOutcome) -> None:
        assert self.store is not None
        self.counters.inc("oo_pushes_total", "status", outcome.status)
        if outcome.status == "delivered":
            await self.store.mark(push.decision_id, push.subscription_id, "sent", outcome.attempts)
        elif outcome.status == "gone":
            await self.store.mark(push.decision_id, push.subscription_id, "gone", outcome.attempts)
            await self.store.remove_subscription(push.subscription_id)
        else:
            log.warning("push %s to %s failed: %s", push.decision_id, push.subscription_id,
                        outcome.reason)
            await self.store.mark(push.decision_id, push.subscription_id, "failed",
                                  outcome.attempts, outcome.reason)

    async def _withdraw(self, user_id: str, withdrawals: tuple[PendingPush, ...]) -> None:
        """Close notifications of stale tips (same Topic as the tip), once per device.

        Each withdrawal is in the log (push_withdrawals) and marked as soon as it is
        answered, so a redelivered decision sends only those still owed."""
        assert self.sender is not None and self.store is not None
        sender, store = self.sender, self.store

        async def one(owed: PendingPush) -> None:
            outcome = await sender.send_plan(owed, plan_withdrawal(user_id, owed.decision_id))
            status = {"delivered": "sent", "gone": "gone"}.get(outcome.status, "failed")
            await _retrying(lambda: store.mark_withdrawal(
                owed.decision_id, owed.subscription_id, status, outcome.attempts,
                None if status == "sent" else outcome.reason), "mark withdrawal")
            self.counters.inc("oo_withdrawals_total", "status", outcome.status)

        async with asyncio.TaskGroup() as group:
            for owed in withdrawals:
                group.create_task(one(owed))

def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """The system's CAs, plus the local push service's CA in dev and test."""
    context = ssl.create_default_context()
    if settings.push_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.push_ca_file))
    return context


async def _retrying(step: Any, what: str) -> Any:
    """Run `step()` until PostgreSQL answers: exponential backoff with full jitter, capped."""
    delay = 0.2
    while True:
        try:
            return await step()
        except UNAVAILABLE as err:
            log.warning("notify: %s failed (%s); retrying in up to %.1fs", what,
                        type(err).__name__, delay)
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, RETRY_CAP_S)


def trace_of(headers: Any) -> str | None:
    """The trace id of a message's `traceparent` header, if it has a valid one."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        if name == "traceparent" and value is not None:
            return trace.trace_id(bytes(value).decode("ascii", "replace"))
    return None


def register(app: faust.App, settings: Settings, dead: DeadLetterSink,
             counters: Counters) -> Notifier:
    """Declare the notify agent and its service on `app`."""
    notifier = Notifier(settings, counters)
    app.add_dependency(notifier)
    decided = app.topic(TIPS_DECIDED.name, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw",
                        partitions=settings.topic_partitions)

    @app.agent(decided, name="oo.agents.notify")
    async def notify_agent(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                record = decode_event(TIPS_DECIDED, message.key, message.value)
            except InvalidRecord as err:
                await dead.put(message, err.reason)
                continue
            with logs.bound(user_id=record.user_id, event_id=record.event_id,
                            decision_id=record.decision_id,  # type: ignore[attr-defined]
                            trace_id=trace_of(message.headers)):
                await notifier.deliver(record)  # type: ignore[arg-type]

    feedback = app.topic(FEEDBACK.name, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw",
                         partitions=settings.topic_partitions)

    @app.agent(feedback, name="oo.agents.notify_close")
    async def close_agent(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                record = decode_event(FEEDBACK, message.key, message.value)
            except InvalidRecord:
                continue  # the engine dead-letters it (one dead letter per message)
            with logs.bound(user_id=record.user_id, event_id=record.event_id,
                            decision_id=record.decision_id,  # type: ignore[attr-defined]
                            trace_id=trace_of(message.headers)):
                await notifier.close(record)  # type: ignore[arg-type]

    return notifier
