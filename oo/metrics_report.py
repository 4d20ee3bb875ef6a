"""`oo metrics`: product metrics computed from the event log.

The event log is the topics (the person's signals, the decisions, the
feedback) or a JSONL export of normalised events, one a line:
{"type": "signup" | "active" | "decided" | "feedback", "user_id", "at" (epoch
seconds), "decision_id", "reaction", "dwell_ms"}. `oo evaluate --events`
writes one for its synthetic people.

- **activation**: share of people who accepted or saved a tip (done, ack,
  save) within ACTIVATION_DAYS of their first event, among people observed
  that long;
- **first-tip reaction rate**: share of people whose first tip was answered
  at all (not left to expire), and answered positively (done, ack, save);
- **dwell**: how long a tip was on screen before its answer (`seen` events
  with `dwell_ms`), median and mean;
- **snooze-to-dismiss ratio**: snoozes per dismissal (a high ratio says "not
  now", a low one "not this");
- **D1 / D7 retention**: share of people active (app opened or visible, or an
  answer) on the day 1 (7) after their first day — days counted in 24 h from
  their first event — among people observed long enough.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from domain.reward import NOTICED

ACTIVATION_DAYS = 7
POSITIVE = frozenset({"done", "ack", "save"})
ACTIVE_CONTEXT = frozenset({"app_opened", "page_visible", "device_active"})
DAY = 86400


def read_event_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Normalised events from JSONL lines."""
    events = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"line {number}: not JSON: {err}") from err
    return events


def event_of(topic: str, record: Any) -> dict[str, Any] | None:
    """The normalised event of a record read from `topic`, if it counts for product metrics."""
    at = int(record.occurred_at.timestamp())
    if topic.endswith(".lifecycle"):
        return ({"type": "signup", "user_id": record.user_id, "at": at}
                if record.change == "user_created" else None)
    if topic.endswith(".context"):
        return ({"type": "active", "user_id": record.user_id, "at": at}
                if record.kind in ACTIVE_CONTEXT else None)
    if topic == "oo.tips.decided":
        return {"type": "decided", "user_id": record.user_id, "at": at,
                "decision_id": record.decision_id}
    if topic == "oo.feedback":
        return {"type": "feedback", "user_id": record.user_id, "at": at,
                "decision_id": record.decision_id, "reaction": record.reaction,
                "dwell_ms": record.dwell_ms}
    return None


async def read_topic_events(bootstrap_servers: str, *, timeout_s: float = 60.0) -> list[
        dict[str, Any]]:
    """Every event of the lifecycle, context, decision and feedback topics, from the beginning."""
    from oo.topic_log import read_records
    from topics.catalog import FEEDBACK, SIGNALS, TIPS_DECIDED

    specs = (SIGNALS["lifecycle"], SIGNALS["context"], TIPS_DECIDED, FEEDBACK)
    records = await read_records(bootstrap_servers, specs, timeout_s=timeout_s)
    return [event for topic, record in records
            if (event := event_of(topic, record)) is not None]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compute(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Every product metric of the event log (None where nothing can be said yet)."""
    first: dict[str, int] = {}
    active: dict[str, set[int]] = {}
    first_tip: dict[str, tuple[int, str]] = {}
    answer_of: dict[str, str] = {}
    positive_at: dict[str, int] = {}
    dwell: list[float] = []
    counts: dict[str, int] = {}
    end = 0
    for e in sorted(events, key=lambda e: (e["at"], e["type"] != "signup")):
        user, at, kind = str(e["user_id"]), int(e["at"]), e["type"]
        end = max(end, at)
        first.setdefault(user, at)
        day = (at - first[user]) // DAY
        if kind == "active":
            active.setdefault(user, set()).add(day)
        elif kind == "decided":
            if user not in first_tip:
                first_tip[user] = (at, str(e["decision_id"]))
        elif kind == "feedback":
            reaction = str(e["reaction"])
            counts[reaction] = counts.get(reaction, 0) + 1
            if reaction in NOTICED or reaction == "ignored":
                answer_of.setdefault(str(e["decision_id"]), reaction)
            if reaction in NOTICED:
                active.setdefault(user, set()).add(day)
            if reaction in POSITIVE:
                positive_at.setdefault(user, at)
            if reaction == "seen" and e.get("dwell_ms") is not None:
                dwell.append(float(e["dwell_ms"]))
    observed_for = {u: (end - t) / DAY for u, t in first.items()}
    window = [u for u, d in observed_for.items() if d >= ACTIVATION_DAYS]
    activated = [u for u in window if u in positive_at
                 and positive_at[u] - first[u] <= ACTIVATION_DAYS * DAY]
    resolved = {u: answer_of[d] for u, (_, d) in first_tip.items() if d in answer_of}
    retention = {}
    for d in (1, 7):
        eligible = [u for u, days in observed_for.items() if days >= d + 1]
        back = [u for u in eligible if d in active.get(u, set())]
        retention[f"d{d}"] = {"rate": _share(len(back), len(eligible)), "people": len(eligible)}
    return {
        "people": len(first),
        "activation": {"rate": _share(len(activated), len(window)), "people": len(window),
                       "within_days": ACTIVATION_DAYS},
        "first_tip": {
            "people": len(resolved),
            "answered_rate": _share(sum(1 for r in resolved.values() if r != "ignored"),
                                    len(resolved)),
            "positive_rate": _share(sum(1 for r in resolved.values() if r in POSITIVE),
                                    len(resolved))},
        "dwell_ms": {"median": _median(dwell),
                     "mean": sum(dwell) / len(dwell) if dwell else None, "seen": len(dwell)},
        "snooze_to_dismiss": (counts.get("snooze", 0) / counts["dismiss"]
                              if counts.get("dismiss") else None),
        "reactions": counts,
        "retention": retention,
    }


def render(result: Mapping[str, Any]) -> str:
    """The metrics as text."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 100:.1f}%"

    a, f, w, r = result["activation"], result["first_tip"], result["dwell_ms"], result["retention"]
    ratio = result["snooze_to_dismiss"]
    median = "n/a" if w["median"] is None else f"{w['median'] / 1000:.1f} s"
    snooze = "n/a" if ratio is None else f"{ratio:.2f}"
    return "\n".join([
        f"oo metrics: {result['people']} people",
        f"  activation (positive answer within {a['within_days']} days)  {pct(a['rate'])}"
        f"  of {a['people']}",
        f"  first tip answered / positive   {pct(f['answered_rate'])} / {pct(f['positive_rate'])}"
        f"  of {f['people']}",
        f"  dwell before answering          median {median}  over {w['seen']} seen",
        f"  snooze-to-dismiss ratio         {snooze}",
        f"  D1 retention                    {pct(r['d1']['rate'])}  of {r['d1']['people']}",
        f"  D7 retention                    {pct(r['d7']['rate'])}  of {r['d7']['people']}",
    ])
