"""The graded reward of a tip: the one place that says what each reaction is worth.

Every learner and every estimator reads these numbers and nothing else:
the bandit's per-user statistics, the evaluation against synthetic people,
off-policy replay and the product metrics. The order is the product's:

    done > ack > save > snooze > no tip > dismiss > ignored

A todo marked done is the best outcome (something got done); acknowledging
an advice comes next, then keeping it for later, then asking for it later.
Saying nothing is worth exactly 0: the reference every tip must beat. A
dismissal costs more than silence (the person was bothered for nothing), and
a tip that expires unanswered costs the most: it was sent at a moment the
person was not there, which is the timing mistake oO exists to avoid.
`delivered` and `seen` are not answers: they carry no reward of their own.
"""

from __future__ import annotations

REWARD: dict[str, float] = {
    "done": 1.0,
    "ack": 0.8,
    "save": 0.5,
    "snooze": 0.1,
    "dismiss": -0.4,
    "ignored": -0.5,
}
# The "no tip now" action: silence is the zero of the scale.
NO_TIP_REWARD = 0.0
# Answers that count as the tip being accepted (acceptance rate).
ACCEPTED = frozenset({"done", "ack"})
# Answers that mean the person looked at the tip (anything but expiring unanswered).
NOTICED = frozenset({"done", "ack", "save", "snooze", "dismiss"})
BEST, WORST = max(REWARD.values()), min(REWARD.values())


def reward_of(reaction: str) -> float | None:
    """The reward of `reaction`; None for reactions that are not answers (delivered, seen)."""
    return REWARD.get(reaction)


def is_answer(reaction: str) -> bool:
    """Whether `reaction` closes a tip with a reward (an answer, or ignored)."""
    return reaction in REWARD
