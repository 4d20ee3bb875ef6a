"""Per-user feature state and the pure fold of signals into it.

`fold(state, event, domain)` returns the new state and whether the event
changed anything. Re-delivered events (same `event_id`, within the
idempotency window) change nothing, which is what makes at-least-once
delivery safe for the features table.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

IDEMPOTENCY_WINDOW = 64


@dataclass(frozen=True)
class UserFeatures:
    """What oO knows about one person's current situation (only what decisions need)."""

    user_id: str
    last_activity_at: datetime | None = None
    signals_by_domain: dict[str, int] = field(default_factory=dict)
    recent_event_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, for the table store."""
        return {
            "user_id": self.user_id,
            "last_activity_at": self.last_activity_at.isoformat() if self.last_activity_at else None,
            "signals_by_domain": dict(self.signals_by_domain),
            "recent_event_ids": list(self.recent_event_ids),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserFeatures:
        last = data.get("last_activity_at")
        return cls(
            user_id=data["user_id"],
            last_activity_at=datetime.fromisoformat(last) if last else None,
            signals_by_domain=dict(data.get("signals_by_domain") or {}),
            recent_event_ids=tuple(data.get("recent_event_ids") or ()),
        )



def fold(state: UserFeatures | None, event: Any, domain: str) -> tuple[UserFeatures, bool]:
    """Fold one validated signal into the user's features.

    Returns `(new_state, changed)`; `changed` is False for a duplicate.
    """
    current = state or UserFeatures(user_id=event.user_id)
    if event.event_id in current.recent_event_ids:
        return current, False
    counts = dict(current.signals_by_domain)
    counts[domain] = counts.get(domain, 0) + 1
    last = current.last_activity_at
    if last is None or event.occurred_at > last:
        last = event.occurred_at
    recent = (*current.recent_event_ids, event.event_id)[-IDEMPOTENCY_WINDOW:]
    return replace(
        current, last_activity_at=last, signals_by_domain=counts, recent_event_ids=recent
    ), True
