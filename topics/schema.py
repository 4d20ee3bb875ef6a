"""JSON Schema (draft 2020-12) of every record, derived from its dataclass.

`json_schema(TipDecided)` is the published contract of a record: the same
field set, types, limits, defaults and null rules that `topics.codec` enforces,
so the schema is never written twice. The schema also keeps to the keywords
draft-07 shares with 2020-12 (nested records are inlined, no `$defs`), so it
embeds unchanged as an AsyncAPI payload.

Where JSON Schema cannot say what the codec checks, the schema says it in a
`description` or is slightly stricter, never looser:

- times must be RFC 3339 with an offset (the codec also accepts other ISO 8601
  spellings; `encode` always writes RFC 3339, `...Z`);
- integers without an upper or lower limit are bounded to 64-bit signed;
- a free JSON object's size (16 KiB of compact JSON) and the whole record's
  (64 KiB) are told, not checked.

One divergence is inherent to JSON Schema: `1.0` is an integer there, while
the codec wants an integer written without a fraction.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from datetime import datetime
from typing import Any

from topics.codec import DEFAULT_MAX_STR, MAX_JSON_OBJECT_BYTES, MAX_RECORD_BYTES, Limit, to_plain

DIALECT = "https://json-schema.org/draft/2020-12/schema"
INT64 = (-(2**63), 2**63 - 1)
DEFAULT_MAX_ITEMS = 100  # the codec's list limit when a field names none
MAX_TIME_CHARS = 40
# RFC 3339 date-time with a required offset; what the codec's fromisoformat takes
# and `encode` writes. ASCII digits only ([0-9], not \d, which is Unicode in Python).
TIME_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
NO_NUL_PATTERN = r"^[^\u0000]*$"


def json_schema(record_cls: type) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `record_cls`'s JSON, as the codec reads and writes it."""
    schema = {"$schema": DIALECT, **_object_schema(record_cls)}
    schema["description"] = (
        f"{schema['description']} At most {MAX_RECORD_BYTES} bytes of UTF-8 JSON."
    )
    return schema


def record_version(record_cls: type) -> int:
    """The schema version a record class writes: the default of its `version` field."""
    for f in dataclasses.fields(record_cls):
        if f.name == "version" and isinstance(f.default, int):
            return f.default
    raise TypeError(f"{record_cls.__name__} has no `version` field with a default")


def _object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        prop = _value_schema(hints[f.name])
        if f.default is not dataclasses.MISSING:
            prop["default"] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            prop["default"] = _plain(f.default_factory())
        else:
            required.append(f.name)
        properties[f.name] = prop
    return {
        "title": cls.__name__,
        "description": describe(cls),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _value_schema(hint: Any, limit: Limit | None = None) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extras = typing.get_args(hint)
        found = next((e for e in extras if isinstance(e, Limit)), None)
        return _value_schema(base, found)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _nullable(_value_schema(inner, limit))
    if origin is typing.Literal:
        choices = list(typing.get_args(hint))
        kinds = sorted({_json_type(c) for c in choices})
        return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": choices}
    if origin is list:
        (item,) = typing.get_args(hint)
        low = limit.min_len if limit and limit.min_len is not None else 0
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_ITEMS
        return {"type": "array", "items": _value_schema(item), "minItems": low, "maxItems": high}
    if origin is dict:
        cap = int(limit.max_len) if limit and limit.max_len else MAX_JSON_OBJECT_BYTES
        return {"type": "object", "description": f"Any JSON object of at most {cap} bytes "
                "as compact JSON."}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _object_schema(hint)
    if hint is str:
        low = limit.min_len if limit and limit.min_len is not None else 1
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_STR
        return {"type": "string", "minLength": low, "maxLength": high, "pattern": NO_NUL_PATTERN}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        low, high = INT64
        if limit and limit.low is not None:
            low = max(low, math.ceil(limit.low))
        if limit and limit.high is not None:
            high = min(high, math.floor(limit.high))
        return {"type": "integer", "minimum": low, "maximum": high}
    if hint is float:
        schema: dict[str, Any] = {"type": "number"}
        if limit and limit.low is not None:
            schema["minimum"] = _number(limit.low)
        if limit and limit.high is not None:
            schema["maximum"] = _number(limit.high)
        return schema
    if hint is datetime:
        return {"type": "string", "format": "date-time", "maxLength": MAX_TIME_CHARS,
                "pattern": TIME_PATTERN}
    raise TypeError(f"no JSON Schema for field type {hint!r}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["type"]
    schema["type"] = [*(kind if isinstance(kind, list) else [kind]), "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    raise TypeError(f"no JSON Schema for the Literal choice {value!r}")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def describe(cls: type) -> str:
    """The first paragraph of a record's docstring, on one line."""
    doc = inspect.getdoc(cls) or cls.__name__
    return " ".join(doc.split("\n\n")[0].split())


def _plain(value: Any) -> Any:
    """A field default as the codec would write it."""
    return to_plain(_Box(value))["value"]


@dataclasses.dataclass(frozen=True)
class _Box:
    value: Any
