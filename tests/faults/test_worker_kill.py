"""Two workers, one SIGKILLed again and again while thousands of signals flow.

Each person's signals carry a sequence number. At the end every signal was
folded exactly once (0 lost, 0 counted twice), each person's signals were
applied in their order, and no moment got two different tips. The number of
redelivered signals (seen again after a crash, dropped as duplicates) is
printed: it is what the idempotency keys absorbed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import consume_until, produce, read_to_end
from topics.catalog import SIGNALS, TIPS_DECIDED
from topics.codec import decode, encode
from topics.records import LifecycleChanged, MoodLogged, TipDecided

pytestmark = [pytest.mark.faults, pytest.mark.integration]
PEOPLE, PER_PERSON = 200, 20


def accounts(people: list[str], now: datetime) -> list[tuple[bytes, bytes]]:
    minute = now.hour * 60 + now.minute
    return [(user.encode(), encode(LifecycleChanged(
        event_id=f"{user}-account", user_id=user, occurred_at=now - timedelta(hours=1),
        source="test", change="user_created", time_zone="UTC",
        quiet_start_minute=(minute + 600) % 1440, quiet_end_minute=(minute + 660) % 1440,
        daily_budget=24))) for user in people]


def moods(people: list[str], now: datetime, seed: int) -> list[list[tuple[bytes, bytes]]]:
    """PER_PERSON rounds; in round n every person logs mood number n (a low one now and then)."""
    rng = random.Random(seed)
    return [[(user.encode(), encode(MoodLogged(
        event_id=f"{user}-{n:03d}", user_id=user, occurred_at=now + timedelta(seconds=n),
        source="test", score=rng.choice((-2, -1, 0, 1, 2))))) for user in people]
        for n in range(PER_PERSON)]


async def test_signals_survive_repeated_sigkills_once_each_and_in_order(topics, workers, capsys):
    bootstrap = topics
    now = datetime.now(UTC)
    people = [str(uuid.uuid4()) for _ in range(PEOPLE)]
    keys = {u.encode() for u in people}
    first, second = workers(0), workers(1)
    first.start()
    second.start()
    await produce(bootstrap, SIGNALS["lifecycle"].name, accounts(people, now))

    kills, duplicates = 0, 0
    rounds = moods(people, now, seed=7)
    started = time.monotonic()
    for n, batch in enumerate(rounds):
        await produce(bootstrap, SIGNALS["mood"].name, batch)
        if n in (4, 9, 14):  # mid-stream, with uncommitted work in flight
            victim = first if n != 9 else second
            duplicates += victim.poll_metric("oo_signals_duplicate_total")
            victim.kill()
            kills += 1
            await asyncio.sleep(0.5)
            victim.start()
    produced_s = time.monotonic() - started

    changelog = f"{first.app_id}-features-changelog"

    def settled(kept: list) -> bool:
        latest = {r.key: r.value for r in kept}
        return all(latest.get(k) is not None and
                   json.loads(latest[k])["signals_by_domain"].get("mood", 0) >= PER_PERSON
                   for k in keys)

    records = await consume_until(bootstrap, changelog, settled, keep=lambda r: r.key in keys,
                                  timeout=180)
    latest = {r.key: json.loads(r.value) for r in records if r.value is not None}
    lost = [k for k in keys if latest[k]["signals_by_domain"].get("mood", 0) < PER_PERSON]
    twice = [k for k in keys if latest[k]["signals_by_domain"].get("mood", 0) > PER_PERSON]
    disorder = []
    for key, state in latest.items():
        seqs = [int(e.rsplit("-", 1)[1]) for e in state["recent_event_ids"]
                if not e.endswith("-account")]
        if seqs != sorted(seqs) or len(seqs) != PER_PERSON:
            disorder.append((key, seqs))

    decided = [decode(TipDecided, r.value) for r in
               await read_to_end(bootstrap, TIPS_DECIDED.name, keep=lambda r: r.key in keys)]
    picks: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for decision in decided:
        picks[decision.triggered_by].add((decision.decision_id, decision.tip.id))
    doubled = {t: p for t, p in picks.items() if len(p) > 1}

    duplicates += first.poll_metric("oo_signals_duplicate_total")
    duplicates += second.poll_metric("oo_signals_duplicate_total")
    with capsys.disabled():
        print(f"\nworker kill: {PEOPLE * PER_PERSON} signals to {PEOPLE} people in "
              f"{produced_s:.1f} s, {kills} SIGKILLs; redelivered and dropped as duplicates "
              f"(at least): {duplicates}; decisions: {len(decided)} records of "
              f"{len({d.decision_id for d in decided})} decision ids for {len(picks)} moments; "
              f"lost {len(lost)}, counted twice {len(twice)}, out of order {len(disorder)}, "
              f"moments with two tips {len(doubled)}")
    assert not lost, f"{len(lost)} people lost signals"
    assert not twice, f"{len(twice)} people had a signal folded twice"
    assert not doubled, f"moments with two different tips: {list(doubled.items())[:3]}"
    # Order slips came from Faust dropping or skipping fetched records around rebalances
    # (docs/reliability.md, "Found and fixed"); agents/app.py guards against both.
    assert not disorder, f"per-person order not kept for {len(disorder)} people: {disorder[:2]}"
