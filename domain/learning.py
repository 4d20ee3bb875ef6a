"""Per-user learned statistics: when this person answers, and what they like.

Folded from their reactions (`apply_feedback` calls `Learned.with_answer`),
read by the learned timing guard and the bandit policy. Kept compact and
bounded, because it lives in the features table value, which the engine
loads and stores for every signal:

- **timing**: decayed counts of tips sent and answered (anything but
  ignored), per local *hour of week* (168 buckets, only those used are
  stored) for tips pushed at timer moments, and one bucket (`PRESENT`) for
  tips given while the person was at their device (they opened the app,
  logged a mood): being there is what makes those answered, not the hour;
- **content**: decayed count and reward sum of the answered tips per arm
  group (`todo`, `habit`, `advice:<topic>`), at most MAX_GROUPS;
- **sent**: the last few tips' decision id, group, timing bucket and policy,
  so that the answer, which names only the decision, can be credited;
- **quiet**: the "no tip now" decision points since the last tip, with their
  propensities, carried into the next decision's context snapshot so that
  off-policy evaluation sees every action, not only the sends.

Evidence fades with LEARN_HALF_LIFE_S (people change); a reaction older than
the last update is counted at the last update's time. Like `Rows`, the
stored (JSON) form is kept until something reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from domain.reward import NOTICED, REWARD

LEARN_HALF_LIFE_S = 21 * 24 * 3600
MAX_SENT = 8
MAX_QUIET = 6
MAX_GROUPS = 32
# Buckets whose decayed count falls under this are forgotten (keeps the state small).
FORGET_BELOW = 0.05
PRESENT = "p"
# Moments that find the person at their device: the app just opened, a mood just
# logged, the app opened right after a meeting. Timer moments push to a pocket.
PRESENT_MOMENTS = frozenset({"app_opened", "low_mood", "free_after_meeting"})
# Smoothing over the hour of week: an hour borrows from the same hour on other
# days (more from days of the same type, weekday or weekend) and from its
# neighbours, so a few tips teach a whole routine.
HOUR_KERNEL = {0: 1.0, 1: 0.5, 2: 0.15}
DAY_KERNEL_SAME_DAY = 1.0
DAY_KERNEL_SAME_TYPE = 0.6
DAY_KERNEL_OTHER_TYPE = 0.25


class Sent(NamedTuple):
    """A tip given, waiting for its answer: what to credit when it comes."""

    decision_id: str
    group: str
    bucket: str  # timing bucket: hour of week "0".."167", or PRESENT
    policy: str
    at: int


class Rate(NamedTuple):
    """Decayed evidence about answering: tips sent and tips answered (weights, not counts)."""

    sent: float
    answered: float


class Tally(NamedTuple):
    """Decayed evidence about content: answered tips of a group and the sum of their rewards."""

    answers: float
    total: float


def hour_of_week(weekday: int, hour: int) -> int:
    """The hour-of-week bucket (0 = Monday 00:00-00:59 local, 167 = Sunday 23:00)."""
    return weekday * 24 + hour


def timing_bucket(moment: str, weekday: int, hour: int) -> str:
    """The timing bucket of a tip given at `moment` on local `weekday` (Monday 0) and `hour`."""
    return PRESENT if moment in PRESENT_MOMENTS else str(hour_of_week(weekday, hour))


def decay(at_from: int | None, at_to: float) -> float:
    """The factor evidence collected up to `at_from` keeps at `at_to`."""
    if at_from is None or at_to <= at_from:
        return 1.0
    return float(0.5 ** ((at_to - at_from) / LEARN_HALF_LIFE_S))


def _kernel(a: int, b: int) -> float:
    hours = abs(a % 24 - b % 24)
    weight = HOUR_KERNEL.get(min(hours, 24 - hours), 0.0)
    if weight == 0.0:
        return 0.0
    day_a, day_b = a // 24, b // 24
    if day_a == day_b:
        return weight * DAY_KERNEL_SAME_DAY
    same_type = (day_a >= 5) == (day_b >= 5)
    return weight * (DAY_KERNEL_SAME_TYPE if same_type else DAY_KERNEL_OTHER_TYPE)


class Odds(NamedTuple):
    """A Beta posterior of the chance the person answers, and the evidence behind it."""

    alpha: float
    beta: float
    evidence: float  # smoothed, decayed tips sent in this bucket

    @property
    def mean(self) -> float:
        """The posterior mean chance of an answer."""
        return self.alpha / (self.alpha + self.beta)


# Fallback prior chance of an answer (the global priors of `domain.priors` replace
# them): high for a person at their device; the prior of a push hour is the
# person's own push record shrunk to the push prior.
PRESENT_PRIOR = 0.85
PUSH_PRIOR = 0.5
PRIOR_STRENGTH = 2.0


class Learned:
    """The learned statistics of one person; immutable, edits return a new value.

    Stored form (`stored()`): {"t": last update (epoch s) or None, "h": {bucket:
    [sent, answered]}, "g": {group: [count, total]}, "s": [Sent rows], "q":
    [[decision_id, at, point]], "qd": quiet points dropped (the log overflowed)}.
    """

    __slots__ = ("_stored",)

    def __init__(self, stored: Mapping[str, Any] | None = None) -> None:
        self._stored: Mapping[str, Any] = stored or {}

    def stored(self) -> Mapping[str, Any]:
        """JSON-ready form (shared, treat as read-only)."""
        return self._stored

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Learned):
            return NotImplemented
        return _normal(self._stored) == _normal(other._stored)

    def __hash__(self) -> int:
        return hash(repr(_normal(self._stored)))

    def __repr__(self) -> str:
        return f"Learned({dict(self._stored)!r})"

    def __bool__(self) -> bool:
        return bool(self._stored)

    # --- reads ------------------------------------------------------------

    @property
    def updated_at(self) -> int | None:
        """When the statistics were last updated (their decay reference)."""
        value = self._stored.get("t")
        return int(value) if value is not None else None

    def rates(self) -> dict[str, Rate]:
        """Timing evidence per bucket, as of the last update."""
        return {k: Rate(float(v[0]), float(v[1])) for k, v in self._stored.get("h", {}).items()}

    def tallies(self) -> dict[str, Tally]:
        """Content evidence per arm group, as of the last update."""
        return {k: Tally(float(v[0]), float(v[1])) for k, v in self._stored.get("g", {}).items()}

    def sent(self) -> tuple[Sent, ...]:
        """Tips waiting for their answer, oldest first."""
        return tuple(Sent(*row) for row in self._stored.get("s", ()))

    def quiet(self) -> tuple[tuple[str, int, Mapping[str, Any]], ...]:
        """The no-tip decision points logged since the last tip: (decision id, at, point)."""
        return tuple((str(d), int(a), p) for d, a, p in self._stored.get("q", ()))

    @property
    def quiet_dropped(self) -> int:
        """No-tip decision points dropped because the log was full (since the last tip)."""
        return int(self._stored.get("qd", 0))

    def answer_evidence(self, bucket: str, at: float) -> Rate:
        """Smoothed timing evidence for `bucket` at `at`: kernel-weighted, decayed.

        `PRESENT` reads its own bucket; an hour of week borrows from nearby
        hours and the same hour on other days (HOUR_KERNEL, DAY_KERNEL_*).
        """
        factor = decay(self.updated_at, at)
        rates = self.rates()
        if bucket == PRESENT:
            rate = rates.get(PRESENT, Rate(0.0, 0.0))
            return Rate(rate.sent * factor, rate.answered * factor)
        target = int(bucket)
        sent = answered = 0.0
        for key, rate in rates.items():
            if key == PRESENT:
                continue
            weight = _kernel(target, int(key))
            if weight:
                sent += weight * rate.sent
                answered += weight * rate.answered
        return Rate(sent * factor, answered * factor)

    def overall_push_rate(self, at: float) -> Rate:
        """All timing evidence of pushed tips (every hour of week), decayed to `at`."""
        factor = decay(self.updated_at, at)
        rates = [r for k, r in self.rates().items() if k != PRESENT]
        return Rate(sum(r.sent for r in rates) * factor, sum(r.answered for r in rates) * factor)

    def answer_odds(self, bucket: str, at: float, *, push_prior: float = PUSH_PRIOR,
                    present_prior: float = PRESENT_PRIOR) -> Odds:
        """The chance the person answers a tip given in `bucket` at `at`, as a Beta posterior.

        A push hour's prior is the person's overall push record (itself shrunk
        to `push_prior`, a global statistic); its local evidence is
        `answer_evidence`. At the device, the prior is `present_prior`.
        """
        local = self.answer_evidence(bucket, at)
        if bucket == PRESENT:
            prior = present_prior
        else:
            overall = self.overall_push_rate(at)
            prior = (push_prior * PRIOR_STRENGTH + overall.answered) / (PRIOR_STRENGTH + overall.sent)
        answered = min(local.answered, local.sent)
        return Odds(prior * PRIOR_STRENGTH + answered,
                    (1.0 - prior) * PRIOR_STRENGTH + local.sent - answered, local.sent)

    def tally(self, group: str, at: float) -> Tally:
        """Content evidence for `group`, decayed to `at`."""
        raw = self._stored.get("g", {}).get(group)
        if raw is None:
            return Tally(0.0, 0.0)
        factor = decay(self.updated_at, at)
        return Tally(float(raw[0]) * factor, float(raw[1]) * factor)

    def family_tally(self, prefix: str, at: float) -> Tally:
        """Content evidence summed over every group starting with `prefix` (e.g. "advice:")."""
        factor = decay(self.updated_at, at)
        picked = [v for k, v in self._stored.get("g", {}).items() if k.startswith(prefix)]
        return Tally(sum(float(v[0]) for v in picked) * factor,
                     sum(float(v[1]) for v in picked) * factor)

    # --- edits ------------------------------------------------------------

    def with_sent(self, row: Sent) -> Learned:
        """Remember a tip given (idempotent on the decision id); clears the quiet log.

        The quiet points were carried in that tip's decision (its context snapshot).
        """
        kept = [r for r in self._stored.get("s", ()) if r[0] != row.decision_id]
        kept.append(list(row))
        changes: dict[str, Any] = {"s": kept[-MAX_SENT:], "q": [], "qd": 0}
        return self._edit(changes)

    def with_quiet(self, decision_id: str, at: int, point: Mapping[str, Any]) -> Learned:
        """Log a no-tip decision point (idempotent on the decision id), bounded by MAX_QUIET."""
        kept = [q for q in self._stored.get("q", ()) if q[0] != decision_id]
        kept.append([decision_id, at, dict(point)])
        dropped = self.quiet_dropped + max(0, len(kept) - MAX_QUIET)
        return self._edit({"q": kept[-MAX_QUIET:], "qd": dropped})

    def with_answer(self, decision_id: str, reaction: str, at: int) -> tuple[Learned, Sent | None]:
        """Credit an answer (done .. dismiss) or `ignored` to the tip `decision_id` was.

        Returns the new statistics and the credited tip; an answer to a tip no
        longer remembered, or not an answer (delivered, seen), changes nothing.
        """
        if reaction not in REWARD:
            return self, None
        rows = self._stored.get("s", ())
        found = next((r for r in rows if r[0] == decision_id), None)
        if found is None:
            return self, None
        sent = Sent(*found)
        now = max(at, self.updated_at or at)
        factor = decay(self.updated_at, now)
        hours = {k: [v[0] * factor, v[1] * factor] for k, v in self._stored.get("h", {}).items()}
        groups = {k: [v[0] * factor, v[1] * factor] for k, v in self._stored.get("g", {}).items()}
        noticed = reaction in NOTICED
        rate = hours.setdefault(sent.bucket, [0.0, 0.0])
        rate[0] += 1.0
        rate[1] += 1.0 if noticed else 0.0
        if noticed:
            # Ignored tips say the moment was wrong, not the content: only answers
            # teach what the person likes.
            tally = groups.setdefault(sent.group, [0.0, 0.0])
            tally[0] += 1.0
            tally[1] += REWARD[reaction]
        hours = {k: [round(v[0], 3), round(v[1], 3)] for k, v in hours.items()
                 if v[0] >= FORGET_BELOW}
        groups = {k: [round(v[0], 3), round(v[1], 3)] for k, v in groups.items()
                  if v[0] >= FORGET_BELOW}
        if len(groups) > MAX_GROUPS:  # keep the groups with the most evidence
            groups = dict(sorted(groups.items(), key=lambda kv: -kv[1][0])[:MAX_GROUPS])
        remaining = [r for r in rows if r[0] != decision_id]
        return self._edit({"t": now, "h": hours, "g": groups, "s": remaining}), sent

    def _edit(self, changes: dict[str, Any]) -> Learned:
        stored = dict(self._stored)
        stored.update(changes)
        return Learned({k: v for k, v in stored.items() if v not in ([], {}, 0, None)
                        or k == "t" and v is not None})


def _normal(stored: Mapping[str, Any]) -> Any:
    # Compare stored forms whatever their container types (tuples after a JSON round trip
    # are lists; rows may be tuples or lists).
    if isinstance(stored, Mapping):
        return {k: _normal(v) for k, v in stored.items()}
    if isinstance(stored, (list, tuple)):
        return [_normal(v) for v in stored]
    return stored
