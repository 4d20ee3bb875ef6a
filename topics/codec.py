"""The one JSON codec for every record on every oO topic.

Records are frozen dataclasses (see `topics.records`). Bytes from a topic are
untrusted: `decode` checks size, UTF-8, JSON, the exact field set, every
field's type and limits, and raises `InvalidRecord` with a reason that names
the field. `encode` is its inverse: compact JSON, times as UTC ISO 8601.

Field types understood: str, int, float, bool, datetime (ISO 8601 with an
offset, normalised to UTC), Literal[...] choices, `X | None`, list[X],
dict[str, Any] (any JSON object), nested record dataclasses, and
`Annotated[X, Limit(...)]` for bounds.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

MAX_RECORD_BYTES = 64 * 1024
DEFAULT_MAX_STR = 512
MAX_JSON_OBJECT_BYTES = 16 * 1024


class InvalidRecord(ValueError):
    """Bytes that are not a valid record; `reason` says why, naming the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Limit:
    """Bounds for an `Annotated` field: string length, number range, list length."""

    min_len: int | None = None
    max_len: int | None = None
    low: float | None = None
    high: float | None = None


def encode(record: Any) -> bytes:
    """Serialise a record dataclass to compact JSON bytes (UTF-8)."""
    return orjson.dumps(_to_plain(record))


def to_plain(record: Any) -> dict[str, Any]:
    """The record as JSON-ready plain data (what `encode` writes)."""
    plain = _to_plain(record)
    assert isinstance(plain, dict)
    return plain


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


def format_time(value: datetime) -> str:
    """UTC ISO 8601 with a Z suffix; naive datetimes are refused."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: oO times always carry a UTC offset")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def decode(cls: type[Any], raw: bytes | bytearray | memoryview | None) -> Any:
    """Validate untrusted bytes and build a `cls` record, or raise InvalidRecord."""
    if raw is None:
        raise InvalidRecord("empty message: no value bytes")
    data = bytes(raw)
    if len(data) > MAX_RECORD_BYTES:
        raise InvalidRecord(f"record is {len(data)} bytes; the limit is {MAX_RECORD_BYTES}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidRecord(f"not UTF-8 text at byte {err.start}") from None
    try:
        # orjson is strict RFC 8259: NaN, Infinity and integers beyond 64 bits are refused.
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InvalidRecord(f"not valid JSON: {err}") from None
    return from_plain(cls, obj)


def from_plain(cls: type[Any], obj: Any) -> Any:
    """Validate already-parsed JSON data and build a `cls` record."""
    return _build(cls, obj, "")


@cache
def _fields(cls: Any) -> tuple[tuple[str, Any, bool], ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, hints[f.name], required))
    return tuple(out)


def _build(cls: Any, obj: Any, path: str) -> Any:
    where = path or "record"
    if not isinstance(obj, dict):
        raise InvalidRecord(f"{where}: expected a JSON object, got {_kind(obj)}")
    fields = _fields(cls)
    known = {name for name, _, _ in fields}
    unknown = sorted(k for k in obj if k not in known)
    if unknown:
        raise InvalidRecord(f"{_join(path, unknown[0])}: unknown field")
    values = {}
    for name, hint, required in fields:
        field_path = _join(path, name)
        if name not in obj:
            if required:
                raise InvalidRecord(f"{field_path}: required field is missing")
            continue
        values[name] = _check(hint, obj[name], field_path)
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # __post_init__ cross-field checks
        raise InvalidRecord(f"{where}: {err}") from None


def _check(hint: Any, value: Any, path: str, limit: Limit | None = None) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(hint)
        found = next((e for e in extras if isinstance(e, Limit)), None)
        return _check(base, value, path, found)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise InvalidRecord(f"{path}: must not be null")
        (inner,) = [a for a in args if a is not type(None)]
        return _check(inner, value, path, limit)
    if value is None:
        raise InvalidRecord(f"{path}: must not be null")
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool):
            allowed = ", ".join(repr(c) for c in choices)
            raise InvalidRecord(f"{path}: {_short(value)} is not one of {allowed}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise InvalidRecord(f"{path}: expected a list, got {_kind(value)}")
        _bound_len(len(value), path, limit, "items")
        (item,) = typing.get_args(hint)
        return [_check(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise InvalidRecord(f"{path}: expected a JSON object, got {_kind(value)}")
        size = len(orjson.dumps(value))
        cap = int(limit.max_len) if limit and limit.max_len else MAX_JSON_OBJECT_BYTES
        if size > cap:
            raise InvalidRecord(f"{path}: object is {size} bytes; the limit is {cap}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if hint is str:
        if not isinstance(value, str):
            raise InvalidRecord(f"{path}: expected a string, got {_kind(value)}")
        low = limit.min_len if limit and limit.min_len is not None else 1
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_STR
        if not low <= len(value) <= high:
            raise InvalidRecord(f"{path}: length {len(value)} is outside {low}..{high}")
        if "\x00" in value:
            raise InvalidRecord(f"{path}: contains a NUL character")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise InvalidRecord(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRecord(f"{path}: expected an integer, got {_kind(value)}")
        _bound_num(value, path, limit)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRecord(f"{path}: expected a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise InvalidRecord(f"{path}: must be a finite number")
        _bound_num(value, path, limit)
        return float(value)
    if hint is datetime:
        return _parse_time(value, path)
    raise TypeError(f"codec does not support field type {hint!r} at {path}")


def _parse_time(value: Any, path: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidRecord(f"{path}: expected an ISO 8601 time string, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRecord(f"{path}: {_short(value)} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InvalidRecord(f"{path}: time has no UTC offset (use e.g. 2026-01-31T08:00:00Z)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidRecord(f"{path}: time is out of range") from None


def _bound_num(value: float, path: str, limit: Limit | None) -> None:
    if limit is None:
        return
    if limit.low is not None and value < limit.low:
        raise InvalidRecord(f"{path}: {value} is below the minimum {_num(limit.low)}")
    if limit.high is not None and value > limit.high:
        raise InvalidRecord(f"{path}: {value} is above the maximum {_num(limit.high)}")


def _bound_len(length: int, path: str, limit: Limit | None, what: str) -> None:
    high = limit.max_len if limit and limit.max_len is not None else 100
    low = limit.min_len if limit and limit.min_len is not None else 0
    if not low <= length <= high:
        raise InvalidRecord(f"{path}: {length} {what}; allowed {low}..{high}")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
