import json
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
    assert state.last_activity_at == T0.timestamp()


def test_a_redelivered_event_changes_nothing():
    state, _ = fold(None, mood("e1"), "mood")
    again, changed = fold(state, mood("e1"), "mood")
    assert not changed and again == state


def test_last_activity_never_moves_backwards_on_late_events():
    state, _ = fold(None, mood("e1", T0), "mood")
    state, _ = fold(state, ContextObserved(event_id="e2", user_id="u", occurred_at=T0 - timedelta(hours=1),
                                           source="t", kind="app_opened"), "context")
    assert state.last_activity_at == T0.timestamp()
    assert state.signals_by_domain == {"mood": 1, "context": 1}


def test_idempotency_window_is_bounded():
    state = None
    for i in range(IDEMPOTENCY_WINDOW + 10):
        state, _ = fold(state, mood(f"e{i}"), "mood")
    assert len(state.recent_event_ids) == IDEMPOTENCY_WINDOW
    assert state.recent_event_ids[-1] == f"e{IDEMPOTENCY_WINDOW + 9}"


def test_an_event_older_than_the_window_is_folded_again():
    state = None
    for i in range(IDEMPOTENCY_WINDOW + 1):
        state, _ = fold(state, mood(f"e{i}"), "mood")
    _, changed = fold(state, mood("e0"), "mood")
    assert changed  # documented limit (ADR 0004): the window is bounded


def test_state_survives_the_table_representation():
    state, _ = fold(None, mood("e1"), "mood")
    assert UserFeatures.from_dict(state.to_dict()) == state


def test_state_survives_a_json_round_trip_of_the_table_representation():
    state, _ = fold(None, mood("e1"), "mood")
    assert UserFeatures.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_the_first_table_format_is_still_read():
    old = {"user_id": "u", "last_activity_at": T0.isoformat(), "signals_by_domain": {"mood": 2},
           "recent_event_ids": ["e1", "e2"]}
    state = UserFeatures.from_dict(old)
    assert state.last_activity_at == T0.timestamp()
    assert state.recent_event_ids == ("e1", "e2") and state.signals_by_domain == {"mood": 2}
    _, changed = fold(state, mood("e2"), "mood")
    assert not changed


def test_deletion_keeps_nothing_and_later_signals_are_dropped():
    from domain.features import forgotten
    from topics.records import LifecycleChanged

    state, _ = fold(None, ContextObserved(event_id="c1", user_id="u", occurred_at=T0, source="t",
                                          kind="app_opened"), "context")
    gone, changed = fold(state, LifecycleChanged(event_id="l1", user_id="u", occurred_at=T0,
                                                 source="t", change="deletion_requested"),
                         "lifecycle")
    assert changed and gone == forgotten("u")
    late, changed = fold(gone, mood("m-late"), "mood")
    assert not changed and late == forgotten("u")
