"""Product metrics from the event log (`oo metrics`)."""

from datetime import UTC, datetime

import pytest

from oo.metrics_report import compute, event_of, render
from topics.records import ContextObserved, FeedbackGiven, LifecycleChanged

pytestmark = pytest.mark.unit
DAY = 86400


def ev(kind, user, day, hour=9, **fields):
    return {"type": kind, "user_id": user, "at": day * DAY + hour * 3600, **fields}


def log():
    events = []
    for user in ("ann", "bob", "cem"):
        events.append(ev("signup", user, 0, 8))
        events.append(ev("active", user, 0, 8))
    # ann: first tip done, back on day 1 and day 7
    events += [ev("decided", "ann", 0, decision_id="a1"),
               ev("feedback", "ann", 0, 10, decision_id="a1", reaction="seen", dwell_ms=3000),
               ev("feedback", "ann", 0, 10, decision_id="a1", reaction="done"),
               ev("active", "ann", 1), ev("active", "ann", 7)]
    # bob: first tip ignored, a later one snoozed, then dismissed; back on day 1 only
    events += [ev("decided", "bob", 0, decision_id="b1"),
               ev("feedback", "bob", 0, 13, decision_id="b1", reaction="ignored"),
               ev("decided", "bob", 1, decision_id="b2"),
               ev("feedback", "bob", 1, 10, decision_id="b2", reaction="seen", dwell_ms=1000),
               ev("feedback", "bob", 1, 10, decision_id="b2", reaction="snooze"),
               ev("decided", "bob", 2, decision_id="b3"),
               ev("feedback", "bob", 2, 10, decision_id="b3", reaction="dismiss"),
               ev("feedback", "bob", 2, 11, decision_id="b3", reaction="dismiss")]
    # cem: no tip, never back; the log runs to day 9
    events.append(ev("active", "cem", 9, 23))
    return events


def test_activation_counts_people_with_a_positive_answer_within_a_week():
    result = compute(log())
    assert result["activation"] == {"rate": pytest.approx(1 / 3), "people": 3, "within_days": 7}


def test_first_tip_reaction_rate_reads_each_persons_first_tip():
    first = compute(log())["first_tip"]
    assert first == {"people": 2, "answered_rate": 0.5, "positive_rate": 0.5}


def test_dwell_and_the_snooze_to_dismiss_ratio():
    result = compute(log())
    assert result["dwell_ms"] == {"median": 2000.0, "mean": 2000.0, "seen": 2}
    assert result["snooze_to_dismiss"] == pytest.approx(0.5)


def test_retention_counts_days_after_the_first_among_people_observed_long_enough():
    retention = compute(log())["retention"]
    assert retention["d1"] == {"rate": pytest.approx(2 / 3), "people": 3}
    assert retention["d7"] == {"rate": pytest.approx(1 / 3), "people": 3}


def test_nothing_to_say_is_said_as_such():
    result = compute([ev("signup", "ann", 0)])
    assert result["activation"]["rate"] is None and result["snooze_to_dismiss"] is None
    assert "n/a" in render(result)


def test_records_from_the_topics_become_events():
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    signup = LifecycleChanged(event_id="l", user_id="u", occurred_at=at, source="t",
                              change="user_created")
    opened = ContextObserved(event_id="c", user_id="u", occurred_at=at, source="t",
                             kind="app_opened")
    hidden = ContextObserved(event_id="h", user_id="u", occurred_at=at, source="t",
                             kind="page_hidden")
    seen = FeedbackGiven(event_id="f", user_id="u", occurred_at=at, source="web",
                         decision_id="d", tip_id="t", reaction="seen", dwell_ms=1200)
    assert event_of("oo.signals.lifecycle", signup)["type"] == "signup"
    assert event_of("oo.signals.context", opened)["type"] == "active"
    assert event_of("oo.signals.context", hidden) is None
    assert event_of("oo.feedback", seen)["dwell_ms"] == 1200
