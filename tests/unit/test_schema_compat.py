"""The compatibility gate: breaking changes fail unless the record version is bumped.

Before/after records are small dataclasses like the real ones, so the gate is
tested on schemas exactly as `topics.schema` generates them. The last test runs
the gate against the committed snapshot, so CI fails on an unversioned break.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import pytest

from oo import contracts
from topics.codec import Limit
from topics.compat import gate, incompatibilities, snapshot
from topics.schema import json_schema

pytestmark = pytest.mark.unit
V1 = Annotated[int, Limit(low=1, high=1)]
V2 = Annotated[int, Limit(low=2, high=2)]
Name = Annotated[str, Limit(min_len=1, max_len=100)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    label: Name
    weight: Annotated[float, Limit(low=0.0, high=1.0)] = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    event_id: Name
    version: V1 = 1
    kind: Literal["a", "b", "c"]
    note: Name | None = None
    count: Annotated[int, Limit(low=0, high=10)] = 0
    tags: Annotated[list[Name], Limit(max_len=5)] = field(default_factory=list)
    at: datetime
    inner: Inner


def verdict_of(before: type, after: type, *, record: str = "Thing") -> Any:
    old = {"topics": {"oo.things": {"record": "Thing", "version": version(before),
                                    "schema": json_schema(before)}}}
    new = {"topics": {"oo.things": {"record": record, "version": version(after),
                                    "schema": json_schema(after)}}}
    (verdict,) = gate(old, new).verdicts
    return verdict


def version(cls: type) -> int:
    return int(cls.__dataclass_fields__["version"].default)


def breaks(after: type) -> list[str]:
    return incompatibilities(json_schema(Released), json_schema(after))


# --- incompatible changes --------------------------------------------------------


def test_a_removed_field_breaks():
    @dataclass(frozen=True, kw_only=True)
    class After:
        event_id: Name
        version: V1 = 1
        kind: Literal["a", "b", "c"]
        count: Annotated[int, Limit(low=0, high=10)] = 0
        tags: Annotated[list[Name], Limit(max_len=5)] = field(default_factory=list)
        at: datetime
        inner: Inner

    assert breaks(After) == ["note: field removed"]


def test_a_changed_type_breaks():
    @dataclass(frozen=True, kw_only=True)
    class After(Released):
        count: Name = "0"  # type: ignore[assignment]

    assert breaks(After) == ["count: type changed from integer to string"]


def test_a_new_required_field_breaks():
    @dataclass(frozen=True, kw_only=True)
    class After(Released):
        priority: Annotated[int, Limit(low=1, high=4)]

    assert breaks(After) == ["priority: new required field"]


def test_an_optional_field_made_required_breaks():
    @dataclass(frozen=True, kw_only=True)
    class After(Released):
        count: Annotated[int, Limit(low=0, high=10)]  # type: ignore[misc]

    assert breaks(After) == ["count: optional field became required"]


def test_a_removed_enum_value_breaks():
    @dataclass(frozen=True, kw_only=True)
    class After(Released):
        kind: Literal["a", "b"]  # type: ignore[assignment]

    assert breaks(After) == ["kind: enum values removed: 'c'"]


@pytest.mark.parametrize(("name", "hint", "expected"), [
    ("note", Annotated[str, Limit(min_len=1, max_len=50)] | None, "note: maxLength tightened from 100 to 50"),
    ("note", Annotated[str, Limit(min_len=2, max_len=100)] | None, "note: minLength tightened from 1 to 2"),
    ("count", Annotated[int, Limit(low=0, high=9)], "count: maximum tightened from 10 to 9"),
    ("count", Annotated[int, Limit(low=1, high=10)], "count: minimum tightened from 0 to 1"),
    ("tags", Annotated[list[Name], Limit(max_len=4)], "tags: maxItems tightened from 5 to 4"),
    ("tags", Annotated[list[Annotated[str, Limit(min_len=1, max_len=10)]], Limit(max_len=5)],
     "tags[]: maxLength tightened from 100 to 10"),
])
def test_a_tighter_limit_breaks(name, hint, expected):
    After = _with_field(name, hint, default=_default(name))
    assert breaks(After) == [expected]


def test_null_no_longer_allowed_breaks():
    After = _with_field("note", Name, default="-")
    assert breaks(After) == ["note: no longer allows null"]


def test_a_change_inside_a_nested_record_breaks():
    @dataclass(frozen=True, kw_only=True)
    class NewInner:
        label: Annotated[str, Limit(min_len=1, max_len=20)]

    After = _with_field("inner", NewInner)
    assert breaks(After) == ["inner.label: maxLength tightened from 100 to 20",
                             "inner.weight: field removed"]


# --- compatible changes ----------------------------------------------------------


def test_an_added_optional_field_is_compatible():
    @dataclass(frozen=True, kw_only=True)
    class After(Released):
        mood: Annotated[int, Limit(low=-2, high=2)] | None = None
        colour: Name = "black"

    assert breaks(After) == []


@pytest.mark.parametrize(("name", "hint"), [
    ("note", Annotated[str, Limit(min_len=0, max_len=500)] | None),
    ("count", Annotated[int, Limit(low=-5, high=100)]),
    ("count", Annotated[int, Limit(low=0, high=10)] | None),
    ("count", Annotated[float, Limit(low=0, high=10)]),  # integer → number widens
    ("tags", Annotated[list[Name], Limit(max_len=50)]),
    ("kind", Literal["a", "b", "c", "d"]),
])
def test_a_loosened_limit_an_added_enum_value_or_a_wider_type_is_compatible(name, hint):
    After = _with_field(name, hint, default=_default(name))
    assert breaks(After) == []


def test_an_unchanged_record_is_compatible():
    verdict = verdict_of(Released, Released)
    assert verdict.ok and verdict.line() == "oo.things (Thing v1): compatible with the release"


# --- the version bump, renames, removed and new topics ---------------------------


def test_an_incompatible_change_fails_the_gate_with_a_clear_line():
    After = _with_field("count", Annotated[int, Limit(low=0, high=9)], default=0)
    verdict = verdict_of(Released, After)
    assert not verdict.ok
    assert verdict.line().startswith("oo.things (Thing v1): INCOMPATIBLE with released v1: "
                                     "count: maximum tightened from 10 to 9.")
    assert "bump the record's version" in verdict.line()


def test_a_version_bump_lets_an_incompatible_change_pass():
    @dataclass(frozen=True, kw_only=True)
    class ThingV2(Released):
        version: V2 = 2  # type: ignore[assignment]
        count: Annotated[int, Limit(low=0, high=9)] = 0

    verdict = verdict_of(Released, ThingV2, record="ThingV2")
    assert verdict.ok and verdict.bumped
    assert "allowed by the version bump" in verdict.line()
    assert "record class renamed from Thing to ThingV2" in verdict.breaks
    assert "version: minimum tightened from 1 to 2" in verdict.breaks


def test_a_renamed_record_without_a_bump_breaks():
    verdict = verdict_of(Released, Released, record="Renamed")
    assert not verdict.ok and verdict.breaks == ("record class renamed from Thing to Renamed",)


def test_a_removed_topic_breaks_and_a_new_topic_does_not():
    old = {"topics": {"oo.gone": {"record": "Gone", "version": 1, "schema": json_schema(Released)}}}
    new = {"topics": {"oo.new": {"record": "New", "version": 1, "schema": json_schema(Released)}}}
    gone, added = gate(old, new).verdicts
    assert not gone.ok and "the topic was removed" in gone.line()
    assert added.ok and added.line() == "oo.new (New v1): new topic, not released yet"
    assert not gate(old, new).ok


# --- the gate on the real contracts (CI runs it) ------------------------------------


def test_no_record_changed_incompatibly_since_the_last_release():
    report = contracts.gate_report()
    assert report.ok, "\n".join(v.line() for v in report.failures)


def test_the_released_snapshot_lists_every_topic():
    released = contracts.gate_report()
    assert {v.topic for v in released.verdicts} == set(snapshot()["topics"])


# --- helpers --------------------------------------------------------------------

REQUIRED = object()


def _default(name: str) -> Any:
    return {"note": None, "count": 0, "tags": []}.get(name, REQUIRED)


def _with_field(name: str, hint: Any, default: Any = REQUIRED) -> type:
    """`Released` with one field's type (and default) replaced, the same field order."""
    hints = typing.get_type_hints(Released, include_extras=True)
    spec: list[Any] = []
    for f in dataclasses.fields(Released):
        if f.name == name:
            kind, value = hint, default
        else:
            kind = hints[f.name]
            value = (f.default if f.default is not dataclasses.MISSING else
                     f.default_factory() if f.default_factory is not dataclasses.MISSING
                     else REQUIRED)
        if value is REQUIRED:
            spec.append((f.name, kind))
        elif isinstance(value, list):
            spec.append((f.name, kind, field(default_factory=list)))
        else:
            spec.append((f.name, kind, field(default=value)))
    return dataclasses.make_dataclass("After", spec, frozen=True, kw_only=True)
