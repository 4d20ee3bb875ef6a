from datetime import UTC, datetime, timedelta

import pytest

from domain.features import IDEMPOTENCY_WINDOW, UserFeatures, fold
from topics.records import ContextObserved, MoodLogged

pytestmark = pytest.mark.unit
T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)


def mood(event_id: str, at: datetime = T0) -> MoodLogged:
    return MoodLogged(event_id=event_id, user_id="u", occurred_at=at, source="t", score=1)


def test_first_signal_creates_the_state():
    state, changed = fold(None, mood("e1"), "mood")
    assert changed and state.user_id == "u" and state.signals_by_domain == {"mood": 1}
    assert state.last_activity_at == T0


def test_a_redelivered_event_changes_nothing():
    state, _ = fold(None, mood("e1"), "mood")
    again, changed = fold(state, mood("e1"), "mood")
    assert not changed and again == state


def test_last_activity_never_moves_backwards_on_late_events():
    state, _ = fold(None, mood("e1", T0), "mood")
    state, _ = fold(state, ContextObserved(event_id="e2", user_id="u", occurred_at=T0 - timedelta(hours=1),
                                           source="t", kind="app_opened"), "context")
    assert state.last_activity_at == T0
    assert state.signals_by_domain == {"mood": 1, "context": 1}


def test_idempotency_window_is_bounded():
    state = None
    for i in range(IDEMPOTENCY_WINDOW + 10):
        state, _ = fold(state, mood(f"e{i}"), "mood")
    assert len(state.recent_event_ids) == IDEMPOTENCY_WINDOW
    assert state.recent_event_ids[-1] == f"e{IDEMPOTENCY_WINDOW + 9}"


def test_state_survives_the_table_representation():
    state, _ = fold(None, mood("e1"), "mood")
    assert UserFeatures.from_dict(state.to_dict()) == state
