"""Rebalance churn: workers 1 → 2 → 3 → 2 → 1 while signals flow; the table equals an oracle.

The oracle folds every input record of the topics with the pure `fold`, key by
key; the features table (read from its changelog) must equal it for every key.
Signals come from two topics, read in no fixed order relative to each other,
so the idempotency memory is compared as a set; everything else exactly.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from domain.features import UserFeatures, fold
from tests.helpers import consume_until, produce, read_to_end
from topics.catalog import SIGNALS
from topics.codec import decode, encode
from topics.records import ContextObserved, MoodLogged

pytestmark = [pytest.mark.faults, pytest.mark.integration]
PEOPLE, ROUNDS = 150, 16


def comparable(state: UserFeatures) -> dict:
    """The state as stored (JSON), with the idempotency memory as a set."""
    data = json.loads(json.dumps(state.to_dict()))
    data["recent_event_ids"] = sorted(data["recent_event_ids"])
    return data


async def test_the_table_equals_the_oracle_after_workers_come_and_go(topics, workers, capsys):
    bootstrap = topics
    rng = random.Random(11)
    now = datetime.now(UTC)
    people = [str(uuid.uuid4()) for _ in range(PEOPLE)]
    keys = {u.encode() for u in people}
    pool = [workers(i) for i in range(3)]
    pool[0].start()
    # (after round n: which workers run) 1 → 2 → 3 → 2 → 1
    plan = {3: ("start", 1), 6: ("start", 2), 9: ("stop", 2), 12: ("stop", 1)}
    started = time.monotonic()
    for n in range(ROUNDS):
        moods, contexts = [], []
        for user in people:
            at = now + timedelta(seconds=n, milliseconds=rng.randrange(1000))
            if rng.random() < 0.6:
                moods.append((user.encode(), encode(MoodLogged(
                    event_id=f"{user}-m{n}", user_id=user, occurred_at=at, source="test",
                    score=rng.choice((-1, 0, 1, 2))))))
            else:
                contexts.append((user.encode(), encode(ContextObserved(
                    event_id=f"{user}-c{n}", user_id=user, occurred_at=at, source="test",
                    kind=rng.choice(("page_visible", "page_hidden", "device_idle"))))))
        await asyncio.gather(produce(bootstrap, SIGNALS["mood"].name, moods),
                             produce(bootstrap, SIGNALS["context"].name, contexts))
        if n in plan:
            action, index = plan[n]
            if action == "start":
                pool[index].start()
            else:
                pool[index].stop()
    produced_s = time.monotonic() - started

    inputs: dict[bytes, list[tuple[object, str]]] = {k: [] for k in keys}
    for domain, record_type in (("mood", MoodLogged), ("context", ContextObserved)):
        for r in await read_to_end(bootstrap, SIGNALS[domain].name, keep=lambda r: r.key in keys):
            inputs[r.key].append((decode(record_type, r.value), domain))
    oracle: dict[bytes, UserFeatures] = {}
    for key, events in inputs.items():
        state = None
        for event, domain in events:
            state, _ = fold(state, event, domain)
        oracle[key] = state

    changelog = f"{pool[0].app_id}-features-changelog"

    def matches(kept: list) -> bool:
        latest = {r.key: r.value for r in kept}
        return all(latest.get(k) is not None and
                   sum(json.loads(latest[k])["signals_by_domain"].values()) ==
                   sum(oracle[k].signals_by_domain.values()) for k in keys)

    records = await consume_until(bootstrap, changelog, matches, keep=lambda r: r.key in keys,
                                  timeout=240)
    latest = {r.key: UserFeatures.from_dict(json.loads(r.value)) for r in records
              if r.value is not None}
    differ = [k for k in keys if comparable(latest[k]) != comparable(oracle[k])]
    with capsys.disabled():
        print(f"\nrebalance churn: {sum(len(v) for v in inputs.values())} signals to {PEOPLE} "
              f"people in {produced_s:.1f} s while workers went 1→2→3→2→1; "
              f"keys differing from the oracle: {len(differ)} of {len(keys)}")
    assert not differ, (f"{len(differ)} keys differ, e.g. {comparable(latest[differ[0]])} "
                        f"!= {comparable(oracle[differ[0]])}")
