"""A worker's local table store is wiped; it recovers from the changelogs to the same content.

People's features and timers are written to RocksDB (the default store), some
keys deleted and set again on the way (a habit removed and defined again
takes its timers with it and back; a deletion leaves tombstones). The
worker is stopped, its stores checksummed, wiped, and the worker started
again: after recovery the stores hold exactly the same keys and values.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from rocksdict import AccessType, Options, Rdict

from tests.conftest import port
from tests.faults.conftest import FaultWorker
from tests.helpers import consume_until, produce
from topics.catalog import SIGNALS
from topics.codec import encode
from topics.records import HabitLogged, LifecycleChanged, MoodLogged

pytestmark = [pytest.mark.faults, pytest.mark.integration]
PEOPLE = 60


def stores(datadir: Path) -> dict[str, str]:
    """sha256 of every table store's (key, value) pairs, by store, Faust's own keys left out."""
    sums = {}
    for path in sorted(p for p in datadir.rglob("*.db") if p.is_dir()):
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            digest = hashlib.sha256()
            count = 0
            for key, value in db.items():
                if key.startswith(b"__faust"):
                    continue  # the store's own changelog offset
                digest.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big")
                              + value)
                count += 1
            sums[path.name] = f"{count}:{digest.hexdigest()}"
        finally:
            db.close()
    return sums


async def test_a_wiped_store_recovers_to_the_same_checksum(topics, settings, tmp_path, capsys):
    bootstrap = topics
    state = tmp_path / "state"
    worker = FaultWorker(settings, f"oo-fault-{uuid.uuid4().hex[:8]}", bootstrap, port(26330),
                         env={"OO_TABLE_STORE": "rocksdb://", "OO_STATE_DIR": str(state)})
    worker.start()
    try:
        now = datetime.now(UTC)
        minute = (now.hour * 60 + now.minute + 120) % 1440
        people = [str(uuid.uuid4()) for _ in range(PEOPLE)]

        def habit(user: str, n: int, change: str) -> tuple[bytes, bytes]:
            return user.encode(), encode(HabitLogged(
                event_id=f"{user}-h{n}", user_id=user, occurred_at=now + timedelta(seconds=n),
                source="test", change=change, habit_id="walk", name="Walk", usual_minute=minute))

        await produce(bootstrap, SIGNALS["lifecycle"].name, [(u.encode(), encode(LifecycleChanged(
            event_id=f"{u}-a", user_id=u, occurred_at=now, source="test", change="user_created",
            time_zone="UTC"))) for u in people])
        # Timers set, deleted with the habit, set again; the last ten people are then forgotten.
        for n, change in enumerate(("defined", "removed", "defined")):
            await produce(bootstrap, SIGNALS["habits"].name, [habit(u, n, change) for u in people])
        await produce(bootstrap, SIGNALS["mood"].name, [(u.encode(), encode(MoodLogged(
            event_id=f"{u}-m", user_id=u, occurred_at=now, source="test", score=1)))
            for u in people])
        gone = people[-10:]
        await produce(bootstrap, SIGNALS["lifecycle"].name, [(u.encode(), encode(LifecycleChanged(
            event_id=f"{u}-d", user_id=u, occurred_at=now + timedelta(seconds=9), source="test",
            change="deletion_requested"))) for u in gone])

        keys = {u.encode() for u in people}
        changelog = f"{worker.app_id}-features-changelog"

        def settled(kept: list) -> bool:
            # The forgotten end with a tombstone; the others have folded their mood.
            latest = {r.key: r.value for r in kept}
            return all(k in latest and (latest[k] is None if k.decode() in gone else
                                        latest[k] is not None and
                                        json.loads(latest[k])["signals_by_domain"].get("mood") == 1)
                       for k in keys)

        await consume_until(bootstrap, changelog, settled, keep=lambda r: r.key in keys, timeout=90)
        await asyncio.sleep(2)  # the timers table's last writes
        worker.stop()
        datadir = next((state / "faust").iterdir())
        before = stores(datadir)
        assert before and any(v.split(":")[0] != "0" for v in before.values()), before

        shutil.rmtree(datadir)  # the local stores are gone
        worker.start()
        # Recovery is done once every partition processes again: one marker per partition.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        markers = []
        try:
            for partition in range(settings.topic_partitions):
                marker = f"marker-{uuid.uuid4()}"
                markers.append(marker.encode())
                await producer.send_and_wait(SIGNALS["mood"].name, partition=partition,
                                             key=marker.encode(), value=encode(MoodLogged(
                                                 event_id=f"{marker}-m", user_id=marker,
                                                 occurred_at=now, source="test", score=0)))
        finally:
            await producer.stop()
        await consume_until(bootstrap, changelog, lambda kept: len({r.key for r in kept}) == len(markers),
                            keep=lambda r: r.key in set(markers), timeout=90)
        worker.stop()

        after = stores(datadir)
        # The markers were written after recovery: recompute with them removed.
        for path in sorted(p for p in datadir.rglob("*.db") if p.is_dir()):
            db = Rdict(str(path), Options(raw_mode=True))
            try:
                for marker in markers:
                    if db.get(marker) is not None:
                        db.delete(marker)
            finally:
                db.close()
        recovered = stores(datadir)
        with capsys.disabled():
            print(f"\ntable recovery: {len(before)} stores, "
                  f"{sum(int(v.split(':')[0]) for v in before.values())} keys before the wipe; "
                  f"after recovery: {'same checksum' if recovered == before else 'DIFFERENT'}")
        assert after != before or not markers  # the markers did land in the recovered stores
        assert recovered == before
    finally:
        worker.stop()  # never leave a worker running, whatever failed
