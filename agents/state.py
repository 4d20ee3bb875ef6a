"""Table values of the engine: the features state as compact JSON bytes (orjson).

A value may also carry the person's *outbox*: decisions published but not yet
known to be acknowledged by the broker (docs/adr/0010-decisions-before-state.md).
They ride in the same record as the state that records them, so a state that
survived a crash always brings along what it promised to publish.

A person who asked to be deleted has a *forgotten marker* instead of a state:
`{"forgotten_at": <epoch s>}` and nothing else, kept for the forget window so
late signals, reactions and timers are dropped by whichever worker owns the
partition then, after restarts and rebalances too
(docs/adr/0012-durable-forgetting.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from domain.features import UserFeatures
from domain.step import Unconfirmed

__all__ = ["Entry", "Unconfirmed", "dump_forgotten", "dump_state", "load_entry", "load_state"]

OUTBOX_KEY = "outbox"
FORGOTTEN_KEY = "forgotten_at"


def _rows(value: Any) -> Any:
    # The state's rows are NamedTuples, which orjson leaves to `default`.
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a table")


def dump_state(state: UserFeatures, outbox: Sequence[Unconfirmed] = ()) -> bytes:
    """The features table value for `state` (and its unconfirmed decisions, if any)."""
    data = state.to_dict()
    if outbox:
        data[OUTBOX_KEY] = list(outbox)
    return orjson.dumps(data, default=_rows)


class Entry(NamedTuple):
    """A features table value, read: the state (None when absent or forgotten), its
    unconfirmed decisions, and when the person was forgotten (None unless they were)."""

    state: UserFeatures | None
    outbox: list[Unconfirmed]
    forgotten_at: int | None = None

    @property
    def forgotten(self) -> bool:
        """The person asked to be deleted (a marker; or a state an older version kept)."""
        return self.forgotten_at is not None or (
            self.state is not None and self.state.deletion_requested)


def dump_forgotten(at: int) -> bytes:
    """The features table value of a person being forgotten since `at`: that fact only."""
    return orjson.dumps({FORGOTTEN_KEY: at})


def load_entry(value: bytes | None) -> Entry:
    """The state stored in a features table value, its outbox, or the forgotten marker."""
    if not value:
        return Entry(None, [])
    data = orjson.loads(value)
    if FORGOTTEN_KEY in data:
        return Entry(None, [], int(data[FORGOTTEN_KEY]))
    outbox = [Unconfirmed(str(d), str(r)) for d, r in data.pop(OUTBOX_KEY, ())]
    return Entry(UserFeatures.from_dict(data), outbox)


def load_state(value: bytes | None) -> UserFeatures | None:
    """The state stored in a features table value (None when absent or forgotten)."""
    return load_entry(value).state
