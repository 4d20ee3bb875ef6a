from datetime import UTC, date, datetime

import pytest

from domain.clock import (
    at_local_minute,
    day_before,
    in_daily_window,
    is_known_zone,
    local_date,
    next_local_minute,
    seconds,
    time_of_day,
    zone,
)

pytestmark = pytest.mark.unit


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("minute", "inside"), [
    (22 * 60, True), (23 * 60 + 59, True), (0, True), (6 * 60 + 59, True),
    (7 * 60, False), (12 * 60, False), (21 * 60 + 59, False),
])
def test_a_window_crossing_midnight_contains_both_ends_of_the_night(minute, inside):
    assert in_daily_window(minute, 22 * 60, 7 * 60) is inside


@pytest.mark.parametrize(("minute", "inside"), [(779, False), (780, True), (839, True),
                                                (840, False)])
def test_a_daytime_window_is_half_open(minute, inside):
    assert in_daily_window(minute, 13 * 60, 14 * 60) is inside


def test_an_empty_window_contains_nothing():
    assert not any(in_daily_window(m, 600, 600) for m in range(24 * 60))


def test_unknown_zones_fall_back_to_utc_without_raising():
    assert not is_known_zone("Mars/Olympus") and zone("Mars/Olympus").key == "UTC"
    assert is_known_zone("Europe/Paris")


def test_local_date_is_the_persons_day_not_the_utc_day():
    assert local_date(utc(2026, 5, 4, 22, 30), "Europe/Paris") == "2026-05-05"
    assert local_date(utc(2026, 5, 5, 3, 30), "America/New_York") == "2026-05-04"


def test_day_before_crosses_month_and_year():
    assert day_before("2026-03-01") == "2026-02-28" and day_before("2026-01-01") == "2025-12-31"


def test_seconds_are_whole_and_naive_datetimes_are_utc():
    assert seconds(datetime(2026, 5, 4, 9, 0, 0, 900_000, tzinfo=UTC)) == utc(2026, 5, 4, 9)
    assert seconds(datetime(2026, 5, 4, 9)) == utc(2026, 5, 4, 9)


@pytest.mark.parametrize(("hour", "bucket"), [(4, "night"), (5, "morning"), (11, "morning"),
                                              (12, "afternoon"), (17, "evening"),
                                              (22, "night")])
def test_time_of_day_buckets(hour, bucket):
    assert time_of_day(datetime(2026, 5, 4, hour, 30)) == bucket


@pytest.mark.parametrize(("tz", "after", "expected"), [
    # Paris springs forward on 2026-03-29: 08:00 is 07:00 UTC the day before, 06:00 UTC that day.
    ("Europe/Paris", utc(2026, 3, 28, 7, 30), utc(2026, 3, 29, 6, 0)),
    ("Europe/Paris", utc(2026, 3, 27, 12, 0), utc(2026, 3, 28, 7, 0)),
    # Paris falls back on 2026-10-25: 08:00 is 06:00 UTC the day before, 07:00 UTC that day.
    ("Europe/Paris", utc(2026, 10, 24, 6, 30), utc(2026, 10, 25, 7, 0)),
    # New York springs forward on 2026-03-08 and falls back on 2026-11-01.
    ("America/New_York", utc(2026, 3, 7, 13, 30), utc(2026, 3, 8, 12, 0)),
    ("America/New_York", utc(2026, 10, 31, 12, 30), utc(2026, 11, 1, 13, 0)),
])
def test_next_local_minute_follows_dst_transitions(tz, after, expected):
    assert next_local_minute(8 * 60, tz, after) == expected


def test_next_local_minute_is_strictly_after():
    exactly = utc(2026, 5, 4, 6, 0)  # 08:00 in Paris
    assert next_local_minute(8 * 60, "Europe/Paris", exactly) == utc(2026, 5, 5, 6, 0)


def test_next_local_minute_can_skip_a_day():
    assert next_local_minute(18 * 60, "UTC", utc(2026, 5, 4, 9), not_on="2026-05-04") == \
        utc(2026, 5, 5, 18)


def test_a_time_skipped_by_spring_forward_lands_an_hour_later():
    # 02:30 does not exist in Paris on 2026-03-29; it maps to 03:30 summer time (01:30 UTC).
    assert at_local_minute(date(2026, 3, 29), 150, "Europe/Paris") == utc(2026, 3, 29, 1, 30)


def test_a_time_repeated_by_fall_back_maps_to_its_first_occurrence():
    # 01:30 happens twice in New York on 2026-11-01: 05:30 UTC (EDT) first.
    assert at_local_minute(date(2026, 11, 1), 90, "America/New_York") == utc(2026, 11, 1, 5, 30)
