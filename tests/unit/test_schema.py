"""The generated JSON Schemas and the codec agree: what one accepts the other accepts.

Seeded random records, written as an outside producer would (and as the codec
encodes them), validate against the schema; for every field, values the codec
refuses (too long, out of range, wrong enum, wrong type, null, missing, unknown
field) are refused by the schema too. Both JSON Schema drafts are checked: the
schema says 2020-12, AsyncAPI reads it as draft-07.
"""

from __future__ import annotations

import dataclasses
import json
import random
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from topics.catalog import ALL_TOPICS
from topics.codec import DEFAULT_MAX_STR, InvalidRecord, Limit, decode, encode
from topics.records import TipDecided
from topics.schema import DEFAULT_MAX_ITEMS, INT64, json_schema, record_version

pytestmark = pytest.mark.unit
RECORDS = [spec.record for spec in ALL_TOPICS]
SAMPLES_PER_RECORD = 150
TEXT = "aZ09 _-.,:;!?'\"\\/é日本😀\t\n"


@cache
def validators(record_cls: type) -> list[Any]:
    schema = json_schema(record_cls)
    Draft202012Validator.check_schema(schema)
    draft7 = {k: v for k, v in schema.items() if k != "$schema"}
    Draft7Validator.check_schema(draft7)
    return [Draft202012Validator(schema), Draft7Validator(draft7)]


def schema_accepts(record_cls: type, data: Any) -> bool:
    verdicts = {v.is_valid(data) for v in validators(record_cls)}
    assert len(verdicts) == 1, "draft-07 and 2020-12 disagree"
    return verdicts.pop()


def as_bytes(data: Any) -> bytes:
    """JSON as a producer writes it (any integer size, unlike orjson)."""
    return json.dumps(data, ensure_ascii=False).encode()


def codec_accepts(record_cls: type, data: Any) -> bool:
    """Whether the codec takes `data` as JSON bytes off a topic."""
    try:
        decode(record_cls, as_bytes(data))
    except InvalidRecord:
        return False
    return True


# --- valid records, as a producer would write them ---------------------------


def unwrap(hint: Any) -> tuple[Any, Limit | None, bool]:
    """(base type, its Limit, nullable) of a field's type hint."""
    limit, nullable = None, False
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            limit = next((e for e in extras if isinstance(e, Limit)), limit)
        elif origin in (types.UnionType, typing.Union):
            (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
            nullable = True
        else:
            return hint, limit, nullable


def fields(cls: type) -> list[tuple[str, Any, bool]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [(f.name, hints[f.name], f.default is dataclasses.MISSING
             and f.default_factory is dataclasses.MISSING) for f in dataclasses.fields(cls)]


def valid_plain(cls: type, rng: random.Random) -> dict[str, Any]:
    out = {}
    for name, hint, required in fields(cls):
        if not required and rng.random() < 0.3:
            continue
        out[name] = valid_value(hint, rng)
    return out


def valid_value(hint: Any, rng: random.Random) -> Any:
    base, limit, nullable = unwrap(hint)
    if nullable and rng.random() < 0.25:
        return None
    origin = typing.get_origin(base)
    if origin is typing.Literal:
        return rng.choice(typing.get_args(base))
    if origin is list:
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_ITEMS
        (item,) = typing.get_args(base)
        return [valid_value(item, rng) for _ in range(rng.randint(0, min(high, 3)))]
    if origin is dict:
        return {f"k{i}": rng.choice([1, -2.5, "x", None, True, [1, "y"], {"n": {}}])
                for i in range(rng.randint(0, 4))}
    if dataclasses.is_dataclass(base):
        return valid_plain(base, rng)
    if base is str:
        low = limit.min_len if limit and limit.min_len is not None else 1
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_STR
        length = rng.choice([low, high, rng.randint(low, min(high, low + 30))])
        chunk = "".join(rng.choice(TEXT) for _ in range(min(length, 64))) or "x"
        return (chunk * (length // len(chunk) + 1))[:length]
    if base is bool:
        return rng.random() < 0.5
    if base is int:
        low = int(limit.low) if limit and limit.low is not None else INT64[0]
        high = int(limit.high) if limit and limit.high is not None else INT64[1]
        return rng.choice([low, high, rng.randint(low, high)])
    if base is float:
        low = limit.low if limit and limit.low is not None else -1e9
        high = limit.high if limit and limit.high is not None else 1e9
        return rng.choice([low, high, rng.uniform(low, high), int(low)])
    if base is datetime:
        return rfc3339(rng)
    raise TypeError(base)


def rfc3339(rng: random.Random) -> str:
    offset = timedelta(minutes=rng.choice([0, 60, -300, 330, 840, -720]))
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8),
                                                        microseconds=rng.choice([0, 1, 999_999]))
    text = when.astimezone(timezone(offset)).isoformat()
    return text.replace("+00:00", "Z") if rng.random() < 0.5 else text


@pytest.mark.parametrize("record_cls", RECORDS, ids=lambda c: c.__name__)
def test_every_record_a_producer_may_send_and_every_encoded_record_fit_the_schema(record_cls):
    rng = random.Random(f"valid-{record_cls.__name__}")
    accepted = 0
    for _ in range(SAMPLES_PER_RECORD):
        plain = valid_plain(record_cls, rng)
        try:
            record = decode(record_cls, as_bytes(plain))
        except InvalidRecord as err:
            # What JSON Schema can't say: the cross-field rule and the record's byte size.
            assert "ends_at is before starts_at" in err.reason or "bytes; the limit" in err.reason
            continue
        accepted += 1
        assert schema_accepts(record_cls, plain), plain
        assert schema_accepts(record_cls, orjson.loads(encode(record))), plain
    assert accepted > SAMPLES_PER_RECORD // 2


# --- refused values: what the codec refuses, the schema refuses ----------------


def wrong_values(hint: Any, required: bool) -> list[tuple[str, Any]]:
    """(what, value) pairs the codec must refuse for a field of type `hint`."""
    base, limit, nullable = unwrap(hint)
    out: list[tuple[str, Any]] = [] if nullable else [("null", None)]
    origin = typing.get_origin(base)
    if origin is typing.Literal:
        out += [("not a choice", "no-such-choice"), ("a boolean", True), ("a number", 3)]
    elif origin is list:
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_ITEMS
        (item,) = typing.get_args(base)
        good = valid_value(item, random.Random(0))
        out += [("too many items", [good] * (high + 1)), ("a string", "todo"),
                ("a wrong item", [{"x": 1}])]
    elif origin is dict:
        out += [("a list", [1]), ("a string", "{}")]
    elif dataclasses.is_dataclass(base):
        inner = valid_plain(base, random.Random(1))
        out += [("a string", "tip"), ("an unknown inner field", {**inner, "colour": "red"})]
        for name, _, inner_required in fields(base):
            if inner_required:
                out.append((f"no inner {name}", {k: v for k, v in inner.items() if k != name}))
                break
    elif base is str:
        low = limit.min_len if limit and limit.min_len is not None else 1
        high = limit.max_len if limit and limit.max_len is not None else DEFAULT_MAX_STR
        out += [("too long", "x" * (high + 1)), ("with NUL", "a\x00b"), ("a number", 7),
                ("a list", ["a"])]
        if low > 0:
            out.append(("too short", "x" * (low - 1)))
    elif base is bool:
        out += [("a number", 1), ("a string", "true")]
    elif base in (int, float):
        low = limit.low if limit and limit.low is not None else None
        high = limit.high if limit and limit.high is not None else None
        step = 1 if base is int else 0.001
        out += [("a string", "1"), ("a boolean", True)]
        if base is int:
            out += [("a fraction", 0.5), ("beyond 64 bits", 2**64)]
        if low is not None:
            out.append(("below the minimum", low - step))
        if high is not None:
            out.append(("above the maximum", high + step))
    elif base is datetime:
        out += [("no offset", "2026-01-31T08:00:00"), ("not a time", "yesterday"),
                ("a number", 1767168000), ("hour 24", "2026-01-31T24:00:00Z"),
                ("second 60", "2026-01-31T08:00:60Z"), ("day 32", "2026-01-32T08:00:00Z"),
                ("too long", "2026-01-31T08:00:00." + "0" * 40 + "Z")]
    if required:
        out.append(("missing", dataclasses.MISSING))
    return out


def refused_cases() -> list[tuple[type, str, str, Any]]:
    cases = []
    for record_cls in RECORDS:
        cases.append((record_cls, "record", "an unknown field", {"colour": "red"}))
        for name, hint, required in fields(record_cls):
            for what, value in wrong_values(hint, required):
                cases.append((record_cls, name, what, value))
    return cases


@cache
def _good_record(record_cls: type) -> bytes:
    rng = random.Random(f"base-{record_cls.__name__}")
    while True:
        plain = valid_plain(record_cls, rng)
        # Small, so that a mutation is refused for itself, not for the record's size.
        if len(as_bytes(plain)) < 4096 and codec_accepts(record_cls, plain):
            return as_bytes(plain)


def good_record(record_cls: type) -> dict[str, Any]:
    """A valid record's plain data (a fresh copy to change)."""
    data: dict[str, Any] = json.loads(_good_record(record_cls))
    return data


@pytest.mark.parametrize(("record_cls", "field", "what", "value"), refused_cases(),
                         ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_a_value_the_codec_refuses_the_schema_refuses(record_cls, field, what, value):
    plain = good_record(record_cls)
    if field == "record":
        plain.update(value)
    elif value is dataclasses.MISSING:
        plain.pop(field, None)
    else:
        plain[field] = value
    with pytest.raises(InvalidRecord) as refused:
        decode(record_cls, as_bytes(plain))
    named = "colour" if field == "record" else field
    assert named in refused.value.reason or "bytes; the limit" in refused.value.reason
    assert not schema_accepts(record_cls, plain), f"{field} {what}: the schema accepts it"


def test_refused_values_cover_every_field_of_every_record():
    covered = {(c.__name__, field) for c, field, _, _ in refused_cases()}
    every = {(c.__name__, name) for c in RECORDS for name, _, _ in fields(c)}
    assert every <= covered


# --- what the schema says about the records ----------------------------------


def test_optional_fields_are_not_required_and_nullable_ones_allow_null():
    schema = json_schema(TipDecided)
    assert schema["required"] == ["event_id", "user_id", "occurred_at", "source", "decision_id",
                                  "triggered_by", "moment", "policy", "propensity", "reason", "tip"]
    assert schema["properties"]["expires_at"]["type"] == ["string", "null"]
    assert schema["properties"]["version"] == {"type": "integer", "minimum": 1, "maximum": 1,
                                               "default": 1}
    assert schema["properties"]["tip"]["properties"]["kind"]["enum"] == ["todo", "advice"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["tip"]["additionalProperties"] is False


def test_a_nullable_required_field_stays_required():
    from topics.records import DeadLettered

    schema = json_schema(DeadLettered)
    assert "user_id" in schema["required"] and "key" in schema["required"]
    assert schema["properties"]["key"]["type"] == ["string", "null"]


def test_the_record_version_is_the_default_of_its_version_field():
    assert record_version(TipDecided) == 1


def test_the_one_inherent_divergence_is_an_integer_written_with_a_fraction():
    # JSON Schema's data model has one number type: 1.0 is an integer there. The
    # codec wants integers written without a fraction; `encode` always does so.
    plain = {**good_record(TipDecided), "version": 1.0}
    assert schema_accepts(TipDecided, plain) and not codec_accepts(TipDecided, plain)
