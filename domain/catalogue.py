"""The advice catalogue: short, humane advices, curated in advice.json and validated on load.

An advice says which moments it fits and under which conditions: the
person's mood (`any`, `low`, `not_low`), the local time of day, and whether a
meeting just ended. A catalogue that breaks a rule fails to load, with every
problem listed, rather than shipping a broken or silent advice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from domain.clock import TIMES_OF_DAY
from domain.moments import MOMENTS

MAX_TITLE = 80
MAX_BODY = 280
MOODS = ("any", "low", "not_low")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KEYS = {"id", "title", "body", "moments", "topic", "conditions"}
_CONDITION_KEYS = {"mood", "time_of_day", "after_meeting"}


class CatalogueError(ValueError):
    """The catalogue breaks a rule; the message lists every problem found."""


@dataclass(frozen=True, slots=True)
class Advice:
    """One advice and when it fits."""

    id: str
    title: str
    body: str
    moments: frozenset[str]
    topic: str
    mood: str = "any"
    times_of_day: frozenset[str] = frozenset(TIMES_OF_DAY)
    after_meeting: bool | None = None  # None: either way

    def fits(self, moment: str, *, mood_low: bool, time_of_day: str, after_meeting: bool) -> bool:
        """Whether this advice fits `moment` under these conditions."""
        if moment not in self.moments or time_of_day not in self.times_of_day:
            return False
        if (self.mood == "low" and not mood_low) or (self.mood == "not_low" and mood_low):
            return False
        return self.after_meeting is None or self.after_meeting == after_meeting


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The validated advices, in file order (which keeps candidate lists deterministic)."""

    advices: tuple[Advice, ...]

    def get(self, advice_id: str) -> Advice | None:
        """The advice `advice_id`, if any."""
        return next((a for a in self.advices if a.id == advice_id), None)

    def matching(self, moment: str, *, mood_low: bool, time_of_day: str,
                 after_meeting: bool) -> tuple[Advice, ...]:
        """The advices that fit `moment` under these conditions, in catalogue order."""
        return tuple(a for a in self.advices if a.fits(
            moment, mood_low=mood_low, time_of_day=time_of_day, after_meeting=after_meeting))

    def moments_covered(self) -> frozenset[str]:
        """The moments at least one advice fits."""
        return frozenset().union(*(a.moments for a in self.advices))


def parse_catalogue(document: dict[str, Any]) -> Catalogue:
    """Validate a catalogue document ({"version": 1, "advices": [...]}) and build it.

    Raises CatalogueError listing every problem: unknown keys, ids that are
    malformed or repeated, titles over MAX_TITLE or bodies over MAX_BODY
    characters, unknown moments, moods or times of day, and moments that no
    advice covers.
    """
    if not isinstance(document, dict):
        raise CatalogueError("the catalogue must be a JSON object")
    problems = [] if document.get("version") == 1 else ["version must be 1"]
    raw = document.get("advices")
    if not isinstance(raw, list):
        raise CatalogueError("; ".join([*problems, "advices must be a list"]))
    advices: list[Advice] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        found = _problems(item)
        label = f"advice {index} ({item.get('id') if isinstance(item, dict) else '?'})"
        if not found and item["id"] in seen:
            found.append("duplicate id")
        problems.extend(f"{label}: {problem}" for problem in found)
        if not found:
            seen.add(item["id"])
            advices.append(_advice(item))
    catalogue = Catalogue(tuple(advices))
    missing = [m for m in MOMENTS if m not in catalogue.moments_covered()]
    if missing and not problems:
        problems.append(f"no advice for moments {', '.join(missing)}")
    if problems:
        raise CatalogueError("; ".join(problems))
    return catalogue


def _problems(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["not an object"]
    found = [f"unknown key {k}" for k in sorted(set(item) - _KEYS)]
    found += [f"missing {k}" for k in sorted(_KEYS - set(item) - {"conditions"})]
    if found:
        return found
    if not isinstance(item["id"], str) or not _ID.match(item["id"]):
        found.append("id must be lowercase letters, digits and dashes")
    for key, limit in (("title", MAX_TITLE), ("body", MAX_BODY)):
        text = item[key]
        if not isinstance(text, str) or not text.strip() or len(text) > limit:
            found.append(f"{key} must be 1 to {limit} characters")
    moments = item["moments"]
    if not isinstance(moments, list) or not moments:
        found.append("moments must be a non-empty list")
    else:
        found += [f"unknown moment {m}" for m in moments if m not in MOMENTS]
    if not isinstance(item["topic"], str) or not item["topic"]:
        found.append("topic must be a non-empty string")
    conditions = item.get("conditions", {})
    if not isinstance(conditions, dict):
        return [*found, "conditions must be an object"]
    found += [f"unknown condition {k}" for k in sorted(set(conditions) - _CONDITION_KEYS)]
    if conditions.get("mood", "any") not in MOODS:
        found.append(f"mood must be one of {', '.join(MOODS)}")
    times = conditions.get("time_of_day", list(TIMES_OF_DAY))
    if not isinstance(times, list) or not times or any(t not in TIMES_OF_DAY for t in times):
        found.append(f"time_of_day must list some of {', '.join(TIMES_OF_DAY)}")
    if not isinstance(conditions.get("after_meeting", False), bool):
        found.append("after_meeting must be true or false")
    return found


def _advice(item: dict[str, Any]) -> Advice:
    conditions = item.get("conditions", {})
    return Advice(
        id=item["id"], title=item["title"], body=item["body"],
        moments=frozenset(item["moments"]), topic=item["topic"],
        mood=conditions.get("mood", "any"),
        times_of_day=frozenset(conditions.get("time_of_day", TIMES_OF_DAY)),
        after_meeting=conditions.get("after_meeting"),
    )


def load_catalogue(text: str) -> Catalogue:
    """Parse and validate a catalogue from JSON text."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise CatalogueError(f"not JSON: {err}") from err
    return parse_catalogue(document)


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The catalogue shipped with the package (domain/advice.json), loaded once."""
    text = resources.files("domain").joinpath("advice.json").read_text(encoding="utf-8")
    return load_catalogue(text)
