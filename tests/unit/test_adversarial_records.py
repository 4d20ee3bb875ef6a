"""Property tests: every record type fed malformed and adversarial values.

Whatever the bytes, `decode_event` either returns a valid record of the
topic's type or raises `InvalidRecord` with a reason — never another
exception (which would crash an agent) — and the dead letter made from the
message is itself a valid record that names the reason.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topics.catalog import ALL_TOPICS, DEADLETTER
from topics.codec import InvalidRecord, decode, encode, to_plain
from topics.examples import examples
from topics.records import DeadLettered
from topics.validation import dead_letter, decode_event

pytestmark = pytest.mark.unit
USER_TOPICS = [spec for spec in ALL_TOPICS if spec is not DEADLETTER]
EXAMPLES = {cls: pairs[0][1] for cls, pairs in examples().items()}

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50),
    st.sampled_from(["", " ", "\x00", "null", "2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z",
                     "\ud7ff" * 3, "🙂" * 200, "x" * 3000, "-1", "1e309"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)


def check(spec, key: bytes | None, value: bytes | None) -> None:
    try:
        record = decode_event(spec, key, value)
    except InvalidRecord as err:
        assert err.reason
        letter = dead_letter(topic=spec.name, partition=0, offset=1, key=key, value=value,
                             reason=err.reason, now=datetime.now(UTC))
        assert decode(DeadLettered, encode(letter)) == letter
        return
    assert isinstance(record, spec.record)
    assert decode(spec.record, encode(record)) == record  # what passes is clean


@pytest.mark.parametrize("spec", USER_TOPICS, ids=lambda s: s.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_one_field_replaced_by_anything_is_a_record_or_a_reason(spec, data):
    base = to_plain(EXAMPLES[spec.record])
    field = data.draw(st.sampled_from(sorted(base)), label="field")
    mutated = dict(base)
    choice = data.draw(st.sampled_from(["replace", "drop", "extra"]), label="how")
    if choice == "replace":
        mutated[field] = data.draw(json_values, label="value")
    elif choice == "drop":
        mutated.pop(field)
    else:
        mutated[data.draw(st.text(min_size=1, max_size=20), label="name")] = data.draw(json_values)
    key = str(mutated.get("user_id", "")).encode() if data.draw(st.booleans()) else \
        data.draw(st.one_of(st.none(), st.binary(max_size=200)), label="key")
    check(spec, key, json.dumps(mutated).encode())  # stdlib: any integer size


@pytest.mark.parametrize("spec", USER_TOPICS, ids=lambda s: s.name)
@settings(max_examples=100, deadline=None)
@given(raw=st.one_of(st.none(), st.binary(max_size=300),
                     json_values.map(lambda v: json.dumps(v).encode())))
def test_arbitrary_bytes_are_refused_with_a_reason(spec, raw):
    check(spec, b"someone", raw)


@pytest.mark.parametrize("spec", USER_TOPICS, ids=lambda s: s.name)
def test_hostile_shapes_are_refused(spec):
    base = to_plain(EXAMPLES[spec.record])
    for value in (
        orjson.dumps({**base, "user_id": "u" * 100_000}),
        b'{"event_id": 1e999}',
        b"NaN",
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe" + orjson.dumps(base),
        orjson.dumps(base) + b"garbage",
        orjson.dumps({**base, "occurred_at": math.pi}),
    ):
        check(spec, str(base["user_id"]).encode(), value)
