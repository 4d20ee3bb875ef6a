"""The compatibility gate: current record schemas against the last released ones.

`contracts/released.json` holds, per topic, the record name, its version and
its JSON Schema as last released (`oo contracts release`). A change is
backward compatible when every message valid under the released schema is
still valid under the current one, and no field disappears: old messages in
the topic still decode, and producers built on the released contract are
still accepted. So these are incompatible:

- a field removed, or a new required field (also an optional one made required);
- a type changed or narrowed (integer → number widens and is fine), null no
  longer allowed;
- an enum value removed, a limit tightened (shorter, smaller range, fewer
  items), a pattern or format changed;
- the topic removed, or its record class renamed.

Adding an optional field, an enum value, or loosening a limit is compatible.
An incompatible change passes only with a bumped record `version` (and, by the
contract rules in docs/adr/0002, a new record class).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topics.catalog import ALL_TOPICS, TopicSpec
from topics.schema import json_schema, record_version

LOWER_BOUNDS = ("minLength", "minimum", "minItems", "exclusiveMinimum")
UPPER_BOUNDS = ("maxLength", "maximum", "maxItems", "exclusiveMaximum")
EXACT = ("pattern", "format", "const", "multipleOf")


@dataclass(frozen=True)
class TopicVerdict:
    """What changed in one topic's contract since its release."""

    topic: str
    record: str
    released_version: int | None  # None: a topic that was never released
    version: int | None  # None: the topic is gone
    breaks: tuple[str, ...] = ()

    @property
    def bumped(self) -> bool:
        return (self.version is not None and self.released_version is not None
                and self.version > self.released_version)

    @property
    def ok(self) -> bool:
        if self.version is None:
            return False
        return not self.breaks or self.bumped

    def line(self) -> str:
        where = f"{self.topic} ({self.record} v{self.version})"
        if self.version is None:
            return f"{self.topic}: the topic was removed; released topics never go away"
        if self.released_version is None:
            return f"{where}: new topic, not released yet"
        if not self.breaks:
            return f"{where}: compatible with the release"
        listed = "; ".join(self.breaks)
        if self.bumped:
            return (f"{where}: incompatible with v{self.released_version}, allowed by the "
                    f"version bump: {listed}")
        return (f"{where}: INCOMPATIBLE with released v{self.released_version}: {listed}. "
                "Make the change compatible (an optional field, a looser limit) or bump the "
                "record's version in a new record class, then `oo contracts release`")


@dataclass(frozen=True)
class GateReport:
    """Every topic's verdict; `ok` when nothing breaks without a version bump."""

    verdicts: tuple[TopicVerdict, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    @property
    def failures(self) -> list[TopicVerdict]:
        return [v for v in self.verdicts if not v.ok]


def snapshot(specs: Iterable[TopicSpec] = ALL_TOPICS) -> dict[str, Any]:
    """The current contracts in the form of contracts/released.json."""
    return {
        "about": "Record schemas as last released, per topic. Written by `oo contracts release`; "
        "`oo contracts check` compares the current records with it.",
        "topics": {
            spec.name: {
                "record": spec.record.__name__,
                "version": record_version(spec.record),
                "schema": json_schema(spec.record),
            }
            for spec in specs
        },
    }


def load(path: Path) -> dict[str, Any]:
    """A released snapshot from disk."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def dump(snap: dict[str, Any]) -> str:
    """A snapshot as the text committed in contracts/released.json."""
    return json.dumps(snap, indent=2, ensure_ascii=False) + "\n"


def gate(released: dict[str, Any], current: dict[str, Any]) -> GateReport:
    """Compare two snapshots (`snapshot()` shape), topic by topic."""
    old_topics, new_topics = released["topics"], current["topics"]
    verdicts = []
    for name, old in old_topics.items():
        new = new_topics.get(name)
        if new is None:
            verdicts.append(TopicVerdict(name, old["record"], old["version"], None))
            continue
        breaks = []
        if new["record"] != old["record"]:
            breaks.append(f"record class renamed from {old['record']} to {new['record']}")
        if new["version"] < old["version"]:
            breaks.append(f"version went down from {old['version']} to {new['version']}")
        breaks += incompatibilities(old["schema"], new["schema"])
        verdicts.append(TopicVerdict(name, new["record"], old["version"], new["version"],
                                     tuple(breaks)))
    for name, new in new_topics.items():
        if name not in old_topics:
            verdicts.append(TopicVerdict(name, new["record"], None, new["version"]))
    return GateReport(tuple(verdicts))


def incompatibilities(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """Why a message valid under `old` may be refused under `new`, or lose a field; [] if none.

    Understands the schemas `topics.schema` generates (typed values with
    bounds, enums, arrays, closed objects); anything else that changed is
    reported as changed.
    """
    where = path or "record"
    out: list[str] = []
    old_types, new_types = _types(old), _types(new)
    lost = old_types - new_types
    if "integer" in lost and "number" in new_types:
        lost.discard("integer")
    if lost == {"null"}:
        out.append(f"{where}: no longer allows null")
    elif lost:
        out.append(f"{where}: type changed from {_show(old_types)} to {_show(new_types)}")
        return out  # the rest compares unrelated things
    if "enum" in new:
        if "enum" not in old:
            out.append(f"{where}: now limited to the values {new['enum']}")
        else:
            gone = [v for v in old["enum"] if v not in new["enum"]
                    and (v is not None or "null" not in lost)]  # already told
            if gone:
                out.append(f"{where}: enum values removed: {', '.join(map(repr, gone))}")
    for key in LOWER_BOUNDS:
        if key in new and (key not in old or new[key] > old[key]):
            out.append(f"{where}: {key} tightened from {old.get(key, 'none')} to {new[key]}")
    for key in UPPER_BOUNDS:
        if key in new and (key not in old or new[key] < old[key]):
            out.append(f"{where}: {key} tightened from {old.get(key, 'none')} to {new[key]}")
    for key in EXACT:
        if key in new and old.get(key) != new[key]:
            out.append(f"{where}: {key} changed from {old.get(key, 'none')!r} to {new[key]!r}")
    if "items" in old or "items" in new:
        out += incompatibilities(old.get("items", {}), new.get("items", {}), f"{path}[]")
    if "object" in old_types:
        out += _object_incompatibilities(old, new, path)
    return out


def _object_incompatibilities(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    out = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name, schema in old_props.items():
        field_path = f"{path}.{name}" if path else name
        if name not in new_props:
            out.append(f"{field_path}: field removed")
            continue
        if name in new_required and name not in old_required:
            out.append(f"{field_path}: optional field became required")
        out += incompatibilities(schema, new_props[name], field_path)
    for name in new_props:
        if name not in old_props and name in new_required:
            out.append(f"{f'{path}.{name}' if path else name}: new required field")
    if new.get("additionalProperties", True) is False and old.get("additionalProperties",
                                                                  True) is not False:
        out.append(f"{path or 'record'}: no longer accepts other fields")
    return out


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return {"string", "number", "integer", "boolean", "object", "array", "null"}
    return set(kind) if isinstance(kind, list) else {kind}


def _show(kinds: set[str]) -> str:
    return " or ".join(sorted(kinds))
