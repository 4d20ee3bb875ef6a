"""What a person's reaction does to a tip instance: the allowed transitions.

A tip is open while `pending`, `delivered` or `seen` (and not expired). One
answer closes it: done (todos), ack (advices), save, snooze (until a later
time), dismiss. `seen` only records that it was on screen. A repeat of the
answer already given is accepted again without effect (a page's offline queue
may send it twice); any other answer to a closed tip is a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

OPEN = frozenset({"pending", "delivered", "seen"})
REACTIONS = ("done", "ack", "save", "snooze", "dismiss", "seen")
STATUS_OF = {"done": "done", "ack": "ack", "save": "saved", "snooze": "snoozed",
             "dismiss": "dismissed", "seen": "seen"}
MAX_SNOOZE = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Apply:
    """Record the reaction: the tip's new status, and a feedback event to emit."""

    status: str


@dataclass(frozen=True, slots=True)
class Repeat:
    """The same answer again: accepted, nothing changes, no new event."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Not allowed: `status` is the HTTP status to answer with, `reason` says why."""

    status: int
    reason: str


Outcome = Apply | Repeat | Refuse


def react(*, status: str, kind: str, expires_at: datetime | None, reaction: str,
          snooze_until: datetime | None, now: datetime) -> Outcome:
    """The outcome of `reaction` on a tip now in `status` (pure; `now` is given)."""
    if reaction not in STATUS_OF:
        return Refuse(400, f"reaction must be one of {', '.join(REACTIONS)}")
    if reaction == "done" and kind != "todo":
        return Refuse(400, "done is for todos; acknowledge an advice with ack")
    if reaction == "ack" and kind != "advice":
        return Refuse(400, "ack is for advices; a todo is marked done")
    if reaction == "snooze":
        if snooze_until is None:
            return Refuse(400, "snooze needs snooze_until")
        if not now < snooze_until <= now + MAX_SNOOZE:
            return Refuse(400, "snooze_until must be in the future, at most 7 days ahead")
    elif snooze_until is not None:
        return Refuse(400, "snooze_until is only for snooze")
    wanted = STATUS_OF[reaction]
    if reaction == "seen":
        # Seeing a tip never conflicts: after an answer it is simply old news.
        return Apply(wanted) if status in ("pending", "delivered") else Repeat()
    if status == wanted:
        return Repeat()
    if status == "withdrawn":
        return Refuse(409, "this tip was replaced or taken back; it no longer applies")
    if status not in OPEN:
        return Refuse(409, f"this tip was already answered ({status})")
    if expires_at is not None and expires_at <= now:
        return Refuse(409, "this tip has expired")
    return Apply(wanted)
