"""Table values of the engine: the features state as compact JSON bytes (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

from domain.features import UserFeatures


def _rows(value: Any) -> Any:
    # The state's rows are NamedTuples, which orjson leaves to `default`.
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a table")


def dump_state(state: UserFeatures) -> bytes:
    """The features table value for `state`."""
    return orjson.dumps(state.to_dict(), default=_rows)


def load_state(value: bytes | None) -> UserFeatures | None:
    """The state stored in a features table value (None when absent)."""
    return UserFeatures.from_dict(orjson.loads(value)) if value else None
