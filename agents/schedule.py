"""The in-memory schedule of durable timers this worker owns.

The durable truth is the `timers` table (one entry per user: the partition
and the user's timers). This schedule is an index over the entries of the
partitions currently assigned to this worker: rebuilt from the table after
recovery and on every rebalance, kept up to date as the engine sets and
cancels timers, and popped by the firing loop. No periodic scan of all users.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Due:
    """A timer whose time has come."""

    user_key: bytes
    timer_id: str
    purpose: str
    fire_at: float
    ref: str | None
    partition: int


def encode_entry(partition: int, timers: Mapping[str, Sequence[Any]]) -> bytes:
    """The table value: the partition and {timer_id: [purpose, fire_at, ref]}."""
    return orjson.dumps({"p": partition, "t": timers})


def decode_entry(value: bytes | None) -> tuple[int, dict[str, list[Any]]]:
    if not value:
        return -1, {}
    data = orjson.loads(value)
    return int(data["p"]), dict(data["t"])


class TimerSchedule:
    """A min-heap of (fire_at, user, timer) with lazy deletion and a per-user index."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, bytes, str]] = []
        self._live: dict[tuple[bytes, str], tuple[float, str, str | None, int]] = {}
        self._by_user: dict[bytes, set[str]] = {}
        self.partitions: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self._live)

    def rebuild(self, entries: Iterable[tuple[bytes, bytes]], partitions: Iterable[int]) -> None:
        """Index every timer of the table entries on `partitions` (after recovery/rebalance)."""
        self.partitions = frozenset(partitions)
        self._heap.clear()
        self._live.clear()
        self._by_user.clear()
        for user_key, value in entries:
            partition, timers = decode_entry(value)
            if partition in self.partitions:
                self.replace_user(user_key, partition, timers)

    def replace_user(self, user_key: bytes, partition: int,
                     timers: Mapping[str, Sequence[Any]]) -> None:
        """Make the schedule hold exactly `timers` for this user."""
        for timer_id in self._by_user.pop(user_key, set()) - timers.keys():
            self._live.pop((user_key, timer_id), None)
        for timer_id, (purpose, fire_at, ref) in timers.items():
            when = float(fire_at)
            old = self._live.get((user_key, timer_id))
            self._live[(user_key, timer_id)] = (when, purpose, ref, partition)
            if old is None or old[0] != when:
                heapq.heappush(self._heap, (when, user_key, timer_id))
        if timers:
            self._by_user[user_key] = set(timers)

    def drop_user(self, user_key: bytes) -> None:
        for timer_id in self._by_user.pop(user_key, set()):
            self._live.pop((user_key, timer_id), None)

    def pop_due(self, now: float, limit: int = 1000) -> list[Due]:
        """Timers due at `now`, taken off the schedule (the engine confirms each firing).

        A timer taken off but never confirmed (a crash) is still in the table,
        so the next rebuild schedules it again: firing is at-least-once and the
        engine makes it idempotent.
        """
        due: list[Due] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            fire_at, user_key, timer_id = heapq.heappop(self._heap)
            live = self._live.get((user_key, timer_id))
            if live is None or live[0] != fire_at:
                continue  # cancelled or moved since it was pushed
            del self._live[(user_key, timer_id)]
            self._by_user.get(user_key, set()).discard(timer_id)
            _, purpose, ref, partition = live
            if partition in self.partitions:
                due.append(Due(user_key, timer_id, purpose, fire_at, ref, partition))
        return due
