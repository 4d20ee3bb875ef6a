"""Table values of the engine: the features state as compact JSON bytes (orjson).

A value may also carry the person's *outbox*: decisions published but not yet
known to be acknowledged by the broker (docs/adr/0010-decisions-before-state.md).
They ride in the same record as the state that records them, so a state that
survived a crash always brings along what it promised to publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from domain.features import UserFeatures

OUTBOX_KEY = "outbox"


class Unconfirmed(NamedTuple):
    """A decision on its way to `oo.tips.decided`: its id and its encoded record."""

    decision_id: str
    record: str


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


def load_entry(value: bytes | None) -> tuple[UserFeatures | None, list[Unconfirmed]]:
    """The state stored in a features table value (None when absent) and its outbox."""
    if not value:
        return None, []
    data = orjson.loads(value)
    outbox = [Unconfirmed(str(d), str(r)) for d, r in data.pop(OUTBOX_KEY, ())]
    return UserFeatures.from_dict(data), outbox


def load_state(value: bytes | None) -> UserFeatures | None:
    """The state stored in a features table value (None when absent)."""
    return load_entry(value)[0]
