import pytest

from agents.schedule import TimerSchedule, decode_entry, encode_entry

pytestmark = pytest.mark.unit


def schedule_with(partitions=(0, 1)) -> TimerSchedule:
    schedule = TimerSchedule()
    schedule.rebuild([], partitions)
    return schedule


def test_due_timers_come_out_in_time_order_and_only_once():
    schedule = schedule_with()
    schedule.replace_user(b"a", 0, {"t1": ["morning_start", 300.0, None]})
    schedule.replace_user(b"b", 1, {"t2": ["habit_window", 100.0, "walk"]})
    assert schedule.pop_due(50) == []
    due = schedule.pop_due(1000)
    assert [(d.user_key, d.timer_id, d.fire_at) for d in due] == [(b"b", "t2", 100.0), (b"a", "t1", 300.0)]
    assert due[0].ref == "walk" and due[0].partition == 1
    assert schedule.pop_due(1000) == [] and len(schedule) == 0


def test_a_moved_or_cancelled_timer_does_not_fire_at_its_old_time():
    schedule = schedule_with()
    schedule.replace_user(b"a", 0, {"t1": ["todo_due_soon", 100.0, "x"], "t2": ["morning_start", 200.0, None]})
    schedule.replace_user(b"a", 0, {"t1": ["todo_due_soon", 500.0, "x"]})  # t1 moved, t2 cancelled
    assert schedule.pop_due(400) == []
    assert [d.timer_id for d in schedule.pop_due(600)] == ["t1"]


def test_timers_of_partitions_this_worker_does_not_own_are_not_fired():
    schedule = TimerSchedule()
    entries = [(b"a", encode_entry(0, {"t1": ["morning_start", 10.0, None]})),
               (b"b", encode_entry(3, {"t2": ["morning_start", 10.0, None]}))]
    schedule.rebuild(entries, [0])
    assert [d.user_key for d in schedule.pop_due(100)] == [b"a"]
    schedule.rebuild(entries, [0, 3])  # after a rebalance gives us partition 3
    assert {d.user_key for d in schedule.pop_due(100)} == {b"a", b"b"}


def test_dropping_a_user_forgets_all_their_timers():
    schedule = schedule_with()
    schedule.replace_user(b"a", 0, {"t1": ["morning_start", 10.0, None], "t2": ["habit_window", 20.0, "h"]})
    schedule.drop_user(b"a")
    assert schedule.pop_due(100) == [] and len(schedule) == 0


def test_table_entries_round_trip():
    assert decode_entry(encode_entry(2, {"t": ["tip_expired", 1.5, "d1"]})) == (2, {"t": ["tip_expired", 1.5, "d1"]})
    assert decode_entry(None) == (-1, {})
