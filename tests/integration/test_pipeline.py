"""The tip pipeline on the real broker: simulated days, durable timers, duplicates."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.clock import in_daily_window
from domain.guards import MIN_SPACING_S
from oo.simulator import run_simulation, simulate_people
from tests.helpers import consume_until, produce, read_to_end
from tests.integration.conftest import Worker
from topics.admin import ensure_topics
from topics.catalog import SIGNALS, TIPS_DECIDED
from topics.codec import decode, encode
from topics.records import ContextObserved, LifecycleChanged, TaskChanged, TipDecided

pytestmark = pytest.mark.integration
USERS, DAYS, SEED = 6, 1, 11


def quiet(time_zone: str, start: int, end: int, at: datetime) -> bool:
    wall = at.astimezone(ZoneInfo(time_zone))
    return in_daily_window(wall.hour * 60 + wall.minute, start, end)


async def wait_for(check, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.5)


def profiles_folded(keys: set[bytes]):
    """A `consume_until` condition on a features changelog: every person in `keys` has had
    their account event folded."""
    def done(kept: list) -> bool:
        latest = {r.key: r.value for r in kept}
        return all(latest.get(k) and json.loads(latest[k])["signals_by_domain"].get("lifecycle")
                   for k in keys)
    return done


async def decisions_for(kafka: str, keys: set[bytes], settle: float = 2.0,
                        triggers: set[str] | None = None, timeout: float = 120.0,
                        at_least: int = 0) -> list[TipDecided]:
    """Every decision for `keys` on oo.tips.decided: read to the topic's end until two reads,
    `settle` seconds apart, agree (and, given `triggers`, each has its decision; given
    `at_least`, there are that many: decisions are published after the state they follow,
    so a loaded machine can show the state first)."""
    deadline = time.monotonic() + timeout
    previous: list[TipDecided] | None = None
    while True:
        records = await read_to_end(kafka, TIPS_DECIDED.name, keep=lambda r: r.key in keys)
        current = [decode(TipDecided, r.value) for r in records]
        covered = (triggers is None or triggers <= {d.triggered_by for d in current}) and \
            len(current) >= at_least
        if covered and previous is not None and len(previous) == len(current):
            return current
        assert time.monotonic() < deadline, f"decisions did not settle ({len(current)} so far)"
        previous = current if covered else None
        await asyncio.sleep(settle)


async def test_a_simulated_day_gives_tips_only_at_legal_moments_and_ignores_duplicates(
        kafka, worker):
    prefix = f"day-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    events = list(simulate_people(USERS, start, DAYS, SEED, prefix))
    prefs = {r.user_id: r for _, r in events if isinstance(r, LifecycleChanged)}
    keys = {u.encode() for u in prefs}
    # People exist before their signals, as in the product (sign-up comes first). The worker
    # reads its topics in no fixed order: sent together, a backlog's app opens and todos can
    # all be folded before the person's time zone is known, and every moment is then skipped
    # by the profile guard (CI saw 0 decisions so). The simulation re-sends these: duplicates.
    # Waited for on the features changelog: a counter would also count the backlog of
    # earlier tests that a fresh group reads first (the kill test below fell for that).
    await produce(kafka, SIGNALS["lifecycle"].name,
                  [(r.user_id.encode(), encode(r)) for r in prefs.values()])
    await consume_until(kafka, f"{worker.app_id}-features-changelog", profiles_folded(keys),
                        keep=lambda r: r.key in keys, timeout=120)

    sent = await run_simulation(kafka, users=USERS, days=DAYS, speed=0, start=start, seed=SEED,
                                prefix=prefix, log=lambda _: None)
    assert sent == len(events)
    per_person = defaultdict(int)
    for _, record in events:
        per_person[record.user_id.encode()] += 1

    def all_folded(kept: list) -> bool:
        latest = {r.key: r.value for r in kept}
        return all(latest.get(k) and sum(json.loads(latest[k])["signals_by_domain"].values()) == n
                   for k, n in per_person.items())

    await consume_until(kafka, f"{worker.app_id}-features-changelog", all_folded,
                        keep=lambda r: r.key in keys, timeout=120)
    decided = await decisions_for(kafka, keys, at_least=1)

    assert decided, "a simulated day with app opens and todos gave no tip at all"
    assert len({d.decision_id for d in decided}) == len(decided)
    by_user_day: dict[tuple[str, str], list[TipDecided]] = defaultdict(list)
    for decision in decided:
        p = prefs[decision.user_id]
        assert not quiet(p.time_zone, p.quiet_start_minute, p.quiet_end_minute,
                         decision.occurred_at), f"tip in quiet hours: {decision.reason}"
        day = decision.occurred_at.astimezone(ZoneInfo(p.time_zone)).date().isoformat()
        by_user_day[(decision.user_id, day)].append(decision)
        assert decision.context_snapshot["moment"] == decision.moment
        assert "quiet_hours" in decision.context_snapshot["guards_passed"]
    for (user, _), tips in by_user_day.items():
        assert len(tips) <= prefs[user].daily_budget, "over the daily budget"
        times = sorted(t.occurred_at for t in tips)
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        assert all(gap >= MIN_SPACING_S for gap in gaps), f"tips closer than the spacing: {gaps}"

    # The same simulation again is a redelivery: every event a duplicate, no new tip.
    duplicates_before = worker.metric("oo_signals_duplicate_total")
    await run_simulation(kafka, users=USERS, days=DAYS, speed=0, start=start, seed=SEED,
                         prefix=prefix, log=lambda _: None)
    await wait_for(lambda: worker.metric("oo_signals_duplicate_total") - duplicates_before >= sent,
                   what="the replay to be seen as duplicates")
    again = await decisions_for(kafka, keys)

    def from_signals(decisions: list[TipDecided]) -> list[str]:
        # Timers planned by the day fire in real time meanwhile, and may decide: not replays.
        return sorted(d.decision_id for d in decisions if not d.triggered_by.startswith("timer:"))

    assert from_signals(again) == from_signals(decided)


async def test_a_durable_timer_fires_after_the_worker_restarts(kafka, worker):
    user = str(uuid.uuid4())
    key = user.encode()
    now = datetime.now(UTC)
    minute = now.hour * 60 + now.minute
    # Quiet hours well away from now, so the timer's moment is legal.
    lifecycle = LifecycleChanged(
        event_id=f"{user}-1", user_id=user, occurred_at=now, source="test",
        change="user_created", time_zone="UTC", quiet_start_minute=(minute + 600) % 1440,
        quiet_end_minute=(minute + 660) % 1440, daily_budget=3)
    due = now + timedelta(minutes=30, seconds=25)  # due-soon timer fires 30 min before: in ~25 s
    task = TaskChanged(event_id=f"{user}-2", user_id=user, occurred_at=now, source="test",
                       change="created", task_id="t-1", title="Send the report", due_at=due,
                       priority=4)
    await produce(kafka, SIGNALS["lifecycle"].name, [(key, encode(lifecycle))])
    await produce(kafka, SIGNALS["tasks"].name, [(key, encode(task))])

    changelog = f"{worker.app_id}-timers-changelog"
    def has_due_soon(kept: list) -> bool:
        # The lifecycle and task topics are read in no fixed order: wait for the task's timer.
        return bool(kept) and kept[-1].value is not None and any(
            purpose == "todo_due_soon" for purpose, _, _ in json.loads(kept[-1].value)["t"].values())

    await consume_until(kafka, changelog, has_due_soon, keep=lambda r: r.key == key)

    worker.stop()          # the timer is due while no worker runs
    worker.start()         # a new process recovers the timers table from its changelog

    found = await consume_until(
        kafka, TIPS_DECIDED.name, bool, timeout=90,
        keep=lambda r: r.key == key and decode(TipDecided, r.value).moment == "todo_due_soon")
    decision = decode(TipDecided, found[0].value)
    assert decision.context_snapshot["moment_ref"] == "t-1"  # the moment is about our task
    assert decision.triggered_by.startswith("timer:todo_due_soon:")
    assert decision.occurred_at >= due - timedelta(minutes=30, seconds=1)
    assert worker.metric("oo_timers_fired_total") >= 1


async def last_value_is(kafka: str, topic: str, key: bytes, wanted, what: str,
                        timeout: float) -> bytes | None:
    """Wait until the last value of `key` on a changelog satisfies `wanted`, and return it.

    Table writes reach their changelog after the counters move (the producer buffers
    them), so the test waits for the broker to have them, never for a guessed delay.
    """
    def done(kept: list) -> bool:
        return bool(kept) and wanted(kept[-1].value)

    found = await consume_until(kafka, topic, done, keep=lambda r: r.key == key, timeout=timeout)
    assert found, what
    return found[-1].value


async def test_deletion_leaves_tombstones_and_late_signals_are_dropped(kafka, postgres, settings):
    # CI once read the changelog right after the deletion was counted and found the
    # person's state, not a tombstone: the tombstone was still in the producer's buffer.
    # The test now waits on the broker. The privacy race behind that question (a signal
    # published before the deletion and read after a restart, by the partition's next
    # owner, used to bring the person back) is tests/unit/test_engine_forgetting.py.
    window = 20  # the late signal below is read well inside it, even on a loaded machine
    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    worker = Worker(settings, f"oo-test-{uuid.uuid4().hex[:8]}",
                    env={"OO_FORGET_WINDOW_S": str(window)})
    worker.start()
    try:
        user = str(uuid.uuid4())
        key = user.encode()
        now = datetime.now(UTC)
        features = f"{worker.app_id}-features-changelog"
        timers = f"{worker.app_id}-timers-changelog"
        opened = ContextObserved(event_id=f"{user}-1", user_id=user, occurred_at=now,
                                 source="test", kind="app_opened")
        gone = LifecycleChanged(event_id=f"{user}-2", user_id=user, occurred_at=now,
                                source="test", change="deletion_requested")
        await produce(kafka, SIGNALS["context"].name, [(key, encode(opened))])
        await produce(kafka, SIGNALS["lifecycle"].name, [(key, encode(gone))])
        # Whatever order the two topics are read in, the person ends as a marker: the
        # deletion's time and nothing else.
        marker = await last_value_is(kafka, features, key,
                                     lambda v: v is not None and b"forgotten_at" in v,
                                     "no forgotten marker", timeout=60)
        assert set(json.loads(marker)) == {"forgotten_at"}
        await wait_for(lambda: worker.metric("oo_signals_folded_total") >= 2 or
                       worker.metric("oo_signals_forgotten_total") >= 1, what="the app opening")

        dropped = worker.metric("oo_signals_forgotten_total")
        await produce(kafka, SIGNALS["context"].name, [(key, encode(ContextObserved(
            event_id=f"{user}-3", user_id=user, occurred_at=now, source="test",
            kind="app_opened")))])
        await wait_for(lambda: worker.metric("oo_signals_forgotten_total") > dropped,
                       what="the late signal to be dropped")
        values = [r.value for r in await read_to_end(kafka, features, keep=lambda r: r.key == key)]
        assert all(v is None or b"forgotten_at" in v for v in values[values.index(marker):]), \
            "a signal after the deletion wrote the person's state again"

        # When the window ends, both tables end with tombstones. Bound: the window plus
        # the 1 s firing loop plus a minute for a loaded machine.
        for changelog in (features, timers):
            await last_value_is(kafka, changelog, key, lambda v: v is None,
                                f"{changelog} does not end with a tombstone", timeout=window + 60)
        # (The worker reads the topics from their start: earlier tests' deletions count too.)
        assert worker.metric("oo_users_purged_total") >= 1
    finally:
        worker.stop()


def accounts(people: list[str], now: datetime, budget: int = 5) -> list[tuple[bytes, bytes]]:
    """`user_created` for each person, with quiet hours well away from now."""
    minute = now.hour * 60 + now.minute
    return [(user.encode(), encode(LifecycleChanged(
        event_id=f"{user}-l", user_id=user, occurred_at=now, source="test",
        change="user_created", time_zone="UTC", quiet_start_minute=(minute + 600) % 1440,
        quiet_end_minute=(minute + 660) % 1440, daily_budget=budget))) for user in people]


async def test_a_worker_killed_mid_stream_never_gives_two_tips_for_one_moment(
        kafka, postgres, settings):
    # CI saw "decisions did not settle (311 so far)": triggers that never got a decision.
    # Root cause (a test race): the test waited for oo_signals_folded_total >= 300, but a
    # fresh group reads the topics from their start, so other tests' accounts counted; our
    # app openings were then read before our people's accounts (another topic), the profile
    # guard skipped them, and with their offsets committed nothing was ever redelivered.
    # The backlog of strangers' accounts below makes that race happen every time; the test
    # now waits for our own people's accounts on the features changelog.
    import signal as signals

    await ensure_topics(kafka, partitions=settings.topic_partitions,
                        replication=settings.topic_replication, log=lambda _: None)
    now = datetime.now(UTC)
    await produce(kafka, SIGNALS["lifecycle"].name,
                  accounts([str(uuid.uuid4()) for _ in range(3000)], now))
    worker = Worker(settings, f"oo-test-{uuid.uuid4().hex[:8]}")
    worker.start()
    try:
        people = [str(uuid.uuid4()) for _ in range(300)]
        keys = {u.encode() for u in people}
        opened = [(user.encode(), encode(ContextObserved(
            event_id=f"{user}-o", user_id=user, occurred_at=now + timedelta(seconds=n % 50),
            source="test", kind="app_opened"))) for n, user in enumerate(people)]
        await produce(kafka, SIGNALS["lifecycle"].name, accounts(people, now))

        await consume_until(kafka, f"{worker.app_id}-features-changelog", profiles_folded(keys),
                            keep=lambda r: r.key in keys, timeout=120)
        decided_before = worker.metric("oo_decisions_total")
        await produce(kafka, SIGNALS["context"].name, opened)
        # The chosen kill point: some of the 300 moments decided (sent, maybe unconfirmed),
        # most not yet; offsets not committed (every 10 s).
        await wait_for(lambda: worker.metric("oo_decisions_total") - decided_before >= 30,
                       what="the first decisions", timeout=60)
        worker.stop(signals.SIGKILL)
        worker.start()  # recovers the tables, re-reads what was not committed
        # Recovery waits out the killed member's session (10 s); decisions follow within
        # seconds (10-20 s measured under load): 90 s is generous.
        decided = await decisions_for(kafka, keys, triggers={f"{u}-o" for u in people},
                                      timeout=90)
    finally:
        worker.stop()

    by_trigger: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for decision in decided:
        by_trigger[decision.triggered_by].add((decision.decision_id, decision.tip.id))
    assert {t for t in by_trigger} == {f"{u}-o" for u in people}, "a moment got no tip"
    assert all(len(picks) == 1 for picks in by_trigger.values()), "two different tips for one moment"
