"""Local-time helpers: instants in, wall-clock facts out.

The core stores instants as epoch seconds (floats, UTC) and only turns them
into wall-clock time at the edge of a rule, through `zoneinfo`. Arithmetic is
always done on instants, never on aware local datetimes: Python adds
timedeltas to aware datetimes in wall-clock time, which is wrong across a DST
transition.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_MINUTES = 24 * 60

# Buckets of the local day, used by advice conditions and context snapshots.
TIMES_OF_DAY = ("night", "morning", "afternoon", "evening")
_BUCKET_STARTS = ((5 * 60, "morning"), (12 * 60, "afternoon"), (17 * 60, "evening"),
                  (22 * 60, "night"))


@lru_cache(maxsize=1024)
def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def is_known_zone(name: str) -> bool:
    """True when `name` is an IANA time zone the system's tzdata knows."""
    return _zone_or_none(name) is not None


def zone(name: str) -> ZoneInfo:
    """The time zone called `name`, or UTC when it is unknown (never raises)."""
    return _zone_or_none(name) or _UTC_ZONE


_UTC_ZONE = ZoneInfo("UTC")


def epoch(instant: datetime) -> float:
    """Epoch seconds of an aware datetime; a naive one is taken as UTC (records are UTC)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.timestamp()


def seconds(instant: datetime) -> int:
    """Whole epoch seconds (floored) of an aware datetime, the unit the features state stores.

    Whole seconds, because JSON writes and reads an int several times faster
    than a float, and the state goes through JSON on every signal.
    """
    return math.floor(epoch(instant))


def utc(seconds: float) -> datetime:
    """The aware UTC datetime of epoch `seconds`."""
    return datetime.fromtimestamp(seconds, UTC)


def local(seconds: float, time_zone: str) -> datetime:
    """Wall-clock datetime in `time_zone` of epoch `seconds`."""
    return datetime.fromtimestamp(seconds, zone(time_zone))


def local_date(seconds: float, time_zone: str) -> str:
    """ISO date (YYYY-MM-DD) of the local day containing epoch `seconds`."""
    return local(seconds, time_zone).date().isoformat()


def day_before(iso_date: str) -> str:
    """The ISO date of the day before `iso_date`."""
    return (date.fromisoformat(iso_date) - timedelta(days=1)).isoformat()


def minute_of_day(wall: datetime) -> int:
    """Minutes after local midnight shown by a wall-clock datetime."""
    return wall.hour * 60 + wall.minute


def in_daily_window(minute: int, start: int, end: int) -> bool:
    """Whether `minute` lies in the daily window [start, end), which may cross midnight.

    `start == end` is an empty window (a person who turned quiet hours off).
    """
    if start == end:
        return False
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def time_of_day(wall: datetime) -> str:
    """The bucket of the local day: night, morning, afternoon or evening."""
    minute = minute_of_day(wall)
    bucket = "night"
    for start, name in _BUCKET_STARTS:
        if minute >= start:
            bucket = name
    return bucket


def hhmm(minute: int) -> str:
    """`minute` after midnight as HH:MM."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def at_local_minute(day: date, minute: int, time_zone: str) -> float:
    """Epoch seconds when the wall clock in `time_zone` reads `minute` on `day`.

    A time skipped by a spring-forward transition maps to the same offset as
    just before it (so 02:30 becomes 03:30 summer time); a time repeated by a
    fall-back transition maps to its first occurrence. Both follow PEP 495
    with fold=0, and both keep a daily timer firing once a day.
    """
    wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60,
                    tzinfo=zone(time_zone))
    return wall.timestamp()


def next_local_minute(minute: int, time_zone: str, after: float,
                      *, not_on: str | None = None) -> float:
    """The first instant strictly after `after` when the local clock reads `minute`.

    `not_on` (an ISO local date) skips that day, e.g. a habit already done today.
    """
    today = local(after, time_zone).date()
    # Three days is enough: today, tomorrow, and the day after when `not_on` is tomorrow.
    for offset in range(3):
        day = today + timedelta(days=offset)
        if not_on is not None and day.isoformat() == not_on:
            continue
        instant = at_local_minute(day, minute, time_zone)
        if instant > after:
            return instant
    raise AssertionError("unreachable: a local minute recurs within three days")
