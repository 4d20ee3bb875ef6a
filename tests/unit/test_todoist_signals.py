"""Todoist items as task signals: due dates in the person's time, changes, stable ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.todoist import due_at, task_signal

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(("due", "zone", "expected"), [
    ({"date": "2026-12-03"}, "Europe/Paris", datetime(2026, 12, 3, 22, 59, tzinfo=UTC)),
    ({"date": "2026-07-03"}, "Europe/Paris", datetime(2026, 7, 3, 21, 59, tzinfo=UTC)),  # summer
    ({"date": "2026-12-03T09:30:00"}, "America/New_York", datetime(2026, 12, 3, 14, 30, tzinfo=UTC)),
    ({"date": "2026-12-03T09:30:00", "timezone": "Asia/Tokyo"}, "Europe/Paris",
     datetime(2026, 12, 3, 0, 30, tzinfo=UTC)),
    ({"date": "2026-12-03T09:30:00Z", "timezone": "Asia/Tokyo"}, "Europe/Paris",
     datetime(2026, 12, 3, 9, 30, tzinfo=UTC)),
    ({"date": "2026-12-03T09:30:00.000000Z"}, "UTC", datetime(2026, 12, 3, 9, 30, tzinfo=UTC)),
    ({"date": "soon"}, "UTC", None),
    (None, "UTC", None),
    ({"date": "2026-12-03"}, "Not/AZone", datetime(2026, 12, 3, 23, 59, tzinfo=UTC)),
])
def test_due_dates_fall_in_the_right_time(due, zone, expected):
    assert due_at(due, zone) == expected


def item(**fields):
    return {"id": "6X7", "content": "Call the dentist", "priority": 3, "due": None,
            "checked": False, "is_deleted": False, "updated_at": "2026-12-01T08:00:00Z", **fields}


def signal(full_sync=False, **fields):
    return task_signal(item(**fields), user_id="u-1", full_sync=full_sync, now=NOW,
                       time_zone="Europe/Paris")


def test_a_first_read_lists_open_tasks_as_created_and_skips_closed_ones():
    created = signal(full_sync=True)
    assert (created.change, created.task_id, created.title, created.priority, created.source) == (
        "created", "todoist:6X7", "Call the dentist", 3, "todoist")
    assert created.user_id == "u-1" and created.occurred_at == NOW
    assert signal(full_sync=True, checked=True) is None
    assert signal(full_sync=True, is_deleted=True) is None


def test_later_reads_say_what_happened():
    assert signal(checked=True).change == "completed"
    assert signal(is_deleted=True).change == "deleted"
    assert signal(content="Call the dentist today").change == "updated"


def test_the_same_state_gives_the_same_event_id_and_a_change_a_new_one():
    assert signal().event_id == signal().event_id
    assert signal().event_id != signal(updated_at="2026-12-01T08:05:00Z").event_id
    assert signal().event_id != signal(checked=True).event_id


def test_odd_items_are_made_safe():
    odd = signal(priority=9, content="  ")
    assert odd.priority == 1 and odd.title is None
    assert signal(content="x" * 900).title == "x" * 500
    assert task_signal({"content": "no id"}, user_id="u", full_sync=True, now=NOW,
                       time_zone="UTC") is None
