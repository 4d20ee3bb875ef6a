"""`oo replay`: estimate a candidate policy's reward from logged decisions and feedback.

Reads decision points from a JSONL export (`oo evaluate --log`, one point a
line) or from the topics (`oo.tips.decided` and `oo.feedback`, from the
beginning to their current end), joins each decision with its answer, and
estimates the candidate's mean reward per decision point with IPS, SNIPS
and a doubly robust estimator (`domain.offpolicy`), with 95% intervals that
resample people.

What makes this valid: every decision point carries, in its context
snapshot ("point", `domain.decide.decision_point`), the probability the live
policy had of its action, and the probability every shadow policy had of it
(and of each arm group). A candidate can therefore be replayed on logs
written while it ran as a shadow (`OO_SHADOW_POLICIES`, or `oo evaluate
--shadow`). No-tip points travel in the next decision's snapshot
("quiet_before"); a decision still unanswered is left out.

`--fit-priors PATH` also writes the bandit's global priors fitted on the
logs (`domain.priors.fit_priors`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from domain.offpolicy import (
    QUIET,
    LoggedPoint,
    dr,
    effective_sample_size,
    ips,
    logged_value,
    snips,
)
from domain.reward import REWARD


def read_jsonl(lines: Iterable[str], run: str | None = None) -> list[dict[str, Any]]:
    """Decision points from an `oo evaluate --log` export (only run `run`, if given)."""
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"line {number}: not JSON: {err}") from err
        if run is None or entry.get("run") == run:
            entries.append(entry)
    return entries


def runs_in(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The runs (policies) an export holds, in order of appearance."""
    return list(dict.fromkeys(str(e.get("run")) for e in entries if e.get("run") is not None))


def from_records(decisions: Iterable[Any], feedback: Iterable[Any]) -> tuple[
        list[dict[str, Any]], dict[str, int]]:
    """Decision points from `TipDecided` and `FeedbackGiven` records (e.g. read from topics).

    Returns the points and counts of what was left out: decisions logged
    without a point (before learning existed), and decisions not answered yet.
    """
    answers: dict[str, str] = {}
    for record in feedback:
        if record.reaction in REWARD and record.decision_id not in answers:
            answers[record.decision_id] = record.reaction
    entries: list[dict[str, Any]] = []
    skipped = {"without_point": 0, "unanswered": 0, "quiet_dropped": 0}
    seen: set[str] = set()
    for record in decisions:
        if record.decision_id in seen:
            continue  # a redelivered decision
        seen.add(record.decision_id)
        snapshot = record.context_snapshot or {}
        skipped["quiet_dropped"] += int(snapshot.get("quiet_dropped", 0))
        for decision_id, at, point in snapshot.get("quiet_before", ()):
            entries.append({"user_id": record.user_id, "decision_id": decision_id, "at": at,
                            "policy": _live_policy(point), "chosen": QUIET, "group": QUIET,
                            "point": point, "reaction": None, "reward": 0.0})
        point = snapshot.get("point")
        if point is None:
            skipped["without_point"] += 1
            continue
        reaction = answers.get(record.decision_id)
        if reaction is None:
            skipped["unanswered"] += 1
            continue
        entries.append({"user_id": record.user_id, "decision_id": record.decision_id,
                        "at": int(record.occurred_at.timestamp()), "policy": record.policy,
                        "chosen": record.tip.id, "group": point.get("group"), "point": point,
                        "reaction": reaction, "reward": REWARD[reaction]})
    return entries, skipped


def _live_policy(point: Mapping[str, Any]) -> str:
    # A quiet point's live policy is the one that chose quiet: the first listed.
    return next(iter(point.get("p", {})), "")


async def read_topics(bootstrap_servers: str, *, timeout_s: float = 30.0) -> tuple[
        list[Any], list[Any]]:
    """Every TipDecided and FeedbackGiven on the topics now, from the beginning."""
    from oo.topic_log import read_records
    from topics.catalog import FEEDBACK, TIPS_DECIDED

    records = await read_records(bootstrap_servers, (TIPS_DECIDED, FEEDBACK),
                                 timeout_s=timeout_s)
    decided = [record for topic, record in records if topic == TIPS_DECIDED.name]
    answered = [record for topic, record in records if topic == FEEDBACK.name]
    return decided, answered


def to_points(entries: Iterable[Mapping[str, Any]], target: str) -> tuple[
        list[LoggedPoint], int]:
    """The points `target` can be replayed on, and how many lack its probabilities."""
    points, missing = [], 0
    for e in entries:
        if e.get("reward") is None:
            continue
        probs = e["point"].get("p", {})
        logger, candidate = probs.get(e["policy"]), probs.get(target)
        if logger is None or candidate is None:
            missing += 1
            continue
        where = "present" if e["point"].get("bucket") == "p" else "push"
        groups = dict(candidate[1])
        uncovered = groups.get(QUIET, 0.0) if QUIET not in logger[1] else 0.0
        points.append(LoggedPoint(str(e["user_id"]), str(e["chosen"]), str(e["group"]), where,
                                  float(logger[0]), float(candidate[0]), groups,
                                  float(e["reward"]), float(uncovered)))
    return points, missing


def replay(entries: Sequence[Mapping[str, Any]], target: str, *, draws: int = 1000,
           seed: int = 0) -> dict[str, Any]:
    """Every estimate of `target`'s mean reward per decision point, JSON-ready."""
    points, missing = to_points(entries, target)
    if not points:
        raise ValueError(f"no logged decision point carries {target!r}'s probabilities; "
                         "replay a policy that ran live or as a shadow")
    result: dict[str, Any] = {
        "target": target, "points": len(points), "without_target": missing,
        "people": len({p.user_id for p in points}),
        "loggers": sorted({str(e["policy"]) for e in entries}),
        "logged": logged_value(points, draws=draws, seed=seed).as_dict(),
        "ips": ips(points, draws=draws, seed=seed).as_dict(),
        "snips": snips(points, draws=draws, seed=seed).as_dict(),
        "dr": dr(points, draws=draws, seed=seed).as_dict(),
        "effective_sample_size": effective_sample_size(points),
    }
    truths = [e["sim"]["truth"][target] for e in entries
              if e.get("reward") is not None and target in (e.get("sim") or {}).get("truth", {})]
    if len(truths) == len(points):
        # A simulated log knows each point's expected reward under the hidden taste.
        result["truth_on_logged_points"] = sum(truths) / len(truths)
    return result


def render(result: Mapping[str, Any]) -> str:
    """The replay report as text."""
    lines = [f"oo replay: {result['target']} on {result['points']} decision points of "
             f"{result['people']} people logged by {', '.join(result['loggers'])} "
             f"({result['without_target']} points without its probabilities left out)",
             f"  effective sample size {result['effective_sample_size']:.0f}", ""]
    for key, label in (("logged", "logging policy, as logged"), ("ips", "IPS"),
                       ("snips", "SNIPS"), ("dr", "doubly robust")):
        e = result[key]
        lines.append(f"  {label:<26} {e['value']:+.4f}  95% [{e['low']:+.4f}, {e['high']:+.4f}]"
                     f"  se {e['se']:.4f}")
    if "truth_on_logged_points" in result:
        lines.append(f"  {'truth on these points (sim)':<26} {result['truth_on_logged_points']:+.4f}")
    if "measured" in result:
        m = result["measured"]
        inside = "inside" if result["dr"]["low"] <= m["value"] <= result["dr"]["high"] else "OUTSIDE"
        lines.append(f"  {'measured by running it':<26} {m['value']:+.4f}  95% [{m['low']:+.4f}, "
                     f"{m['high']:+.4f}]  ({inside} the DR interval)")
    if "expected_by_running" in result and "truth_on_logged_points" in result:
        # Both noise-free (the hidden model): what running it changes that replay cannot see.
        expected = result["expected_by_running"]
        gap = expected - result["truth_on_logged_points"]
        lines.append(f"  {'expected by running (sim)':<26} {expected:+.4f}  "
                     f"(vs truth at the logged points {gap:+.4f})")
    return "\n".join(lines)


def write_priors(entries: Sequence[Mapping[str, Any]], out: IO[str], source: str) -> None:
    """Fit the bandit's global priors on the logged answers and write them as JSON."""
    from domain.priors import fit_priors

    priors = fit_priors(entries, source=source)
    json.dump(priors.to_document(), out, indent=1)
    out.write("\n")


def iter_lines(path: str) -> Iterator[str]:
    """The lines of `path` ("-" for standard input)."""
    import sys

    if path == "-":
        yield from sys.stdin
        return
    with open(path, encoding="utf-8") as handle:
        yield from handle
