"""The notifier's order of effects: each push's outcome is recorded as soon as it is known.

The store and the sender are stand-ins that record calls; the pushes themselves
are covered against a real push service in tests/integration/test_notify*.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.tips import PendingPush, Recorded
from agents.counters import Counters
from agents.notify import Notifier
from domain.push import PushOutcome, PushPlan
from oo.settings import Settings
from tests.conftest import oo_test_environ
from topics.records import Tip, TipDecided

pytestmark = pytest.mark.unit


def decided() -> TipDecided:
    now = datetime.now(UTC)
    return TipDecided(
        event_id="d1", user_id=str(uuid.uuid4()), occurred_at=now, source="test",
        decision_id="d1", triggered_by="e1", moment="app_opened", policy="random",
        propensity=0.5, reason="test",
        tip=Tip(id="advice:water", kind="advice", title="Water", source="catalogue"),
        expires_at=now + timedelta(hours=1))


def pending(n: int) -> PendingPush:
    return PendingPush("d1", uuid.UUID(int=n), f"https://push.example/{n}", "k", "a")


class Store:
    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded
        self.marked: list[tuple[uuid.UUID, str]] = []

    async def record_decision(self, _: TipDecided) -> Recorded:
        return self.recorded

    async def mark(self, decision_id: str, subscription_id: uuid.UUID, status: str,
                   attempts: int, error: str | None = None) -> None:
        self.marked.append((subscription_id, status))


class Sender:
    """Answers at once, except for the subscriptions in `slow` (until `release` is set)."""

    def __init__(self, slow: set[uuid.UUID]) -> None:
        self.slow = slow
        self.release = asyncio.Event()
        self.sent: list[uuid.UUID] = []

    async def send_plan(self, push: PendingPush, plan: PushPlan) -> PushOutcome:
        self.sent.append(push.subscription_id)
        if push.subscription_id in self.slow:
            await self.release.wait()
        return PushOutcome("delivered", "201", attempts=1, http_status=201)

    async def send_many(self, pushes: tuple[PendingPush, ...], plan: PushPlan) -> list[PushOutcome]:
        return list(await asyncio.gather(*(self.send_plan(p, plan) for p in pushes)))


def notifier(store: Store, sender: Sender, counters: Counters) -> Notifier:
    service = Notifier(Settings.from_env(oo_test_environ()), counters)
    service.store, service.sender = store, sender  # type: ignore[assignment]
    return service


async def test_a_push_is_recorded_sent_while_another_device_of_the_decision_still_hangs():
    fast, slow = pending(1), pending(2)
    store = Store(Recorded(True, True, (), (fast, slow)))
    sender = Sender(slow={slow.subscription_id})
    delivering = asyncio.create_task(notifier(store, sender, Counters()).deliver(decided()))
    try:
        async with asyncio.timeout(2):
            while not store.marked:
                await asyncio.sleep(0.01)
    except TimeoutError:
        delivering.cancel()
        pytest.fail("the answered push was not recorded while the other device's push hung")
    # A crash now must find the fast push recorded, or a restart would send it again.
    assert store.marked == [(fast.subscription_id, "sent")]
    assert not delivering.done()
    sender.release.set()
    await delivering
    assert store.marked == [(fast.subscription_id, "sent"), (slow.subscription_id, "sent")]


async def test_a_redelivered_decision_is_counted_and_sends_only_what_is_still_pending():
    still_pending = pending(3)
    store = Store(Recorded(True, False, (), (still_pending,)))
    sender, counters = Sender(slow=set()), Counters()
    await notifier(store, sender, counters).deliver(decided())
    assert counters.get("oo_notify_redelivered_total") == 1
    assert sender.sent == [still_pending.subscription_id]
    assert store.marked == [(still_pending.subscription_id, "sent")]
