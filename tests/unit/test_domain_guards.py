from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain import guards
from domain.features import (
    FATIGUE_HALF_LIFE_S,
    CalendarEvent,
    Preferences,
    Rows,
    ShowingTip,
    UserFeatures,
    apply_decision,
    apply_feedback,
)
from domain.guards import GUARD_NAMES, GUARDS, MIN_SPACING_S, check_all

pytestmark = pytest.mark.unit


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def person(tz: str = "UTC", **prefs) -> UserFeatures:
    """A person whose account event (time zone, quiet hours) has been folded."""
    prefs.setdefault("changed_at", int(utc(2026, 1, 1)))
    return replace(UserFeatures(user_id="u"), prefs=Preferences(time_zone=tz, **prefs))


def test_every_guard_is_listed_under_its_own_name():
    names = tuple(g(person(), utc(2026, 5, 4, 12)).name for g in GUARDS)
    assert names == GUARD_NAMES and len(set(names)) == len(names)


def test_a_fresh_person_at_noon_passes_every_guard():
    assert all(r.passed for r in check_all(person(), utc(2026, 5, 4, 12)))


def test_no_tip_before_the_persons_time_zone_and_quiet_hours_are_known():
    # Their first app opening can be read before their account event (another topic).
    unknown = UserFeatures(user_id="u")
    verdict = guards.profile(unknown, utc(2026, 5, 4, 12))
    assert not verdict.passed and "not known" in verdict.reason
    assert not all(r.passed for r in check_all(unknown, utc(2026, 5, 4, 12)))
    assert guards.profile(person("Australia/Sydney"), utc(2026, 5, 4, 12)).passed


# --- quiet hours ----------------------------------------------------------------

DST_CASES = [
    # (zone, UTC instant, quiet?) - the same UTC clock time flips across each transition.
    ("Europe/Paris", (2026, 3, 28, 5, 30), True),     # 06:30 CET, the day before spring-forward
    ("Europe/Paris", (2026, 3, 29, 5, 30), False),    # 07:30 CEST, spring-forward day
    ("Europe/Paris", (2026, 3, 29, 4, 30), True),     # 06:30 CEST
    ("Europe/Paris", (2026, 3, 28, 20, 30), False),   # 21:30 CET
    ("Europe/Paris", (2026, 3, 29, 20, 30), True),    # 22:30 CEST
    ("Europe/Paris", (2026, 10, 24, 5, 30), False),   # 07:30 CEST, the day before fall-back
    ("Europe/Paris", (2026, 10, 25, 5, 30), True),    # 06:30 CET, fall-back day
    ("Europe/Paris", (2026, 10, 25, 6, 30), False),   # 07:30 CET
    ("America/New_York", (2026, 3, 7, 11, 30), True),   # 06:30 EST, before spring-forward
    ("America/New_York", (2026, 3, 8, 11, 30), False),  # 07:30 EDT, spring-forward day
    ("America/New_York", (2026, 3, 9, 2, 30), True),    # 22:30 EDT
    ("America/New_York", (2026, 10, 31, 11, 30), False),  # 07:30 EDT, before fall-back
    ("America/New_York", (2026, 11, 1, 11, 30), True),    # 06:30 EST, fall-back day
    ("America/New_York", (2026, 11, 1, 12, 30), False),   # 07:30 EST
]


@pytest.mark.parametrize(("tz", "instant", "quiet"), DST_CASES)
def test_no_tip_during_quiet_hours_across_dst(tz, instant, quiet):
    result = guards.quiet_hours(person(tz), utc(*instant))
    assert result.passed is not quiet
    assert result.name == "quiet_hours" and "local" in result.reason


@pytest.mark.parametrize("instant", [(2026, 11, 1, 5, 30), (2026, 11, 1, 6, 30)])
def test_the_hour_repeated_at_fall_back_is_quiet_both_times(instant):
    # 01:30 New York happens at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
    night_owl = person("America/New_York", quiet_start_minute=60, quiet_end_minute=120)
    assert not guards.quiet_hours(night_owl, utc(*instant)).passed
    assert guards.quiet_hours(night_owl, utc(2026, 11, 1, 7, 0)).passed  # 02:00 EST


def test_a_quiet_window_inside_the_hour_skipped_at_spring_forward_never_blocks_that_night():
    skipped = person("Europe/Paris", quiet_start_minute=120, quiet_end_minute=180)
    instants = [utc(2026, 3, 29, 0, 0) + 60 * m for m in range(180)]  # 01:00 CET .. 04:59 CEST
    assert all(guards.quiet_hours(skipped, t).passed for t in instants)


@pytest.mark.parametrize(("local_hm", "quiet"), [((21, 59), False), ((22, 0), True),
                                                 ((23, 59), True), ((0, 0), True),
                                                 ((6, 59), True), ((7, 0), False)])
def test_quiet_hours_cross_midnight(local_hm, quiet):
    hour, minute = local_hm
    # Tokyo has no DST: local = UTC + 9.
    at = utc(2026, 5, 4, 0, 0) + ((hour - 9) % 24) * 3600 + minute * 60
    assert guards.quiet_hours(person("Asia/Tokyo"), at).passed is not quiet


def test_quiet_hours_turned_off_never_block():
    off = person(quiet_start_minute=0, quiet_end_minute=0)
    assert all(guards.quiet_hours(off, utc(2026, 5, 4) + h * 3600).passed for h in range(24))


# --- daily budget ------------------------------------------------------------------


def spent(state: UserFeatures, count: int, first: datetime) -> UserFeatures:
    for i in range(count):
        at = first + timedelta(minutes=i)
        state, _ = apply_decision(state, f"d{i}", f"advice:{i}", "advice", at, at)
    return state


def test_the_budget_blocks_once_spent():
    state = spent(person(daily_budget=2), 1, datetime(2026, 5, 4, 9, tzinfo=UTC))
    assert guards.daily_budget(state, utc(2026, 5, 4, 12)).passed
    state = spent(state, 2, datetime(2026, 5, 4, 10, tzinfo=UTC))
    assert not guards.daily_budget(state, utc(2026, 5, 4, 12)).passed


def test_the_budget_resets_at_local_midnight_not_utc_midnight():
    state = spent(person("Europe/Paris"), 3, datetime(2026, 5, 4, 9, tzinfo=UTC))
    assert not guards.daily_budget(state, utc(2026, 5, 4, 21, 55)).passed  # 23:55 Paris
    assert guards.daily_budget(state, utc(2026, 5, 4, 22, 5)).passed  # 00:05 Paris, UTC still May 4


def test_the_budget_resets_at_local_midnight_in_new_york_on_fall_back_day():
    state = spent(person("America/New_York"), 3, datetime(2026, 11, 1, 14, tzinfo=UTC))
    assert not guards.daily_budget(state, utc(2026, 11, 2, 4, 55)).passed  # 23:55 EST
    assert guards.daily_budget(state, utc(2026, 11, 2, 5, 5)).passed  # 00:05 EST


def test_a_zero_budget_means_no_tips():
    assert not guards.daily_budget(person(daily_budget=0), utc(2026, 5, 4, 12)).passed


# --- spacing ---------------------------------------------------------------------


@pytest.mark.parametrize(("minutes_after", "passes"), [(0, False), (89, False), (90, True),
                                                        (240, True)])
def test_tips_are_spaced_by_the_minimum_spacing(minutes_after, passes):
    last = datetime(2026, 5, 4, 9, tzinfo=UTC)
    state = spent(person(), 1, last)
    at = last.timestamp() + minutes_after * 60
    assert MIN_SPACING_S == 90 * 60
    assert guards.spacing(state, at).passed is passes


def test_a_trigger_older_than_the_last_tip_is_not_spaced_enough():
    state = spent(person(), 1, datetime(2026, 5, 4, 9, tzinfo=UTC))
    assert not guards.spacing(state, utc(2026, 5, 4, 8)).passed


# --- fatigue ---------------------------------------------------------------------


def dismissed(state: UserFeatures, count: int, at: datetime) -> UserFeatures:
    for i in range(count):
        state, _ = apply_feedback(state, f"d{i}", "dismiss", at)
    return state


def test_one_dismissal_is_not_fatigue_but_two_are():
    at = datetime(2026, 5, 4, 9, tzinfo=UTC)
    assert guards.fatigue(dismissed(person(), 1, at), at.timestamp()).passed
    assert not guards.fatigue(dismissed(person(), 2, at), at.timestamp()).passed


def test_fatigue_decays_until_the_guard_passes_again():
    at = datetime(2026, 5, 4, 9, tzinfo=UTC)
    tired = dismissed(person(), 2, at)
    assert not guards.fatigue(tired, at.timestamp() + 3600).passed
    # 2.0 halves to 1.0 after one half-life: under the limit again.
    assert guards.fatigue(tired, at.timestamp() + FATIGUE_HALF_LIFE_S).passed


def test_ignored_tips_tire_too():
    at = datetime(2026, 5, 4, 9, tzinfo=UTC)
    state = dismissed(person(), 1, at)
    state, _ = apply_feedback(state, "x", "ignored", at)
    assert not guards.fatigue(state, at.timestamp()).passed


# --- busy ------------------------------------------------------------------------


def with_event(busy: bool, start: float, end: float) -> UserFeatures:
    return replace(person(), calendar=Rows.of(CalendarEvent, [CalendarEvent("c", int(start),
                                                                            int(end), busy, 0)]))


def test_no_tip_during_a_busy_meeting():
    state = with_event(True, utc(2026, 5, 4, 9), utc(2026, 5, 4, 10))
    assert not guards.busy(state, utc(2026, 5, 4, 9, 30)).passed
    assert guards.busy(state, utc(2026, 5, 4, 10)).passed  # the end is free
    assert guards.busy(state, utc(2026, 5, 4, 8, 59)).passed


def test_a_free_calendar_event_does_not_block():
    assert guards.busy(with_event(False, utc(2026, 5, 4, 9), utc(2026, 5, 4, 10)),
                       utc(2026, 5, 4, 9, 30)).passed


# --- unanswered tip, deletion --------------------------------------------------------


def test_no_tip_while_the_last_one_is_still_showing_unanswered():
    state = replace(person(), showing=ShowingTip("d1", "advice:x", "advice",
                                                 int(utc(2026, 5, 4, 13))))
    assert not guards.tip_showing(state, utc(2026, 5, 4, 12)).passed
    assert guards.tip_showing(state, utc(2026, 5, 4, 13)).passed  # expired


def test_an_answered_tip_no_longer_blocks():
    at = datetime(2026, 5, 4, 9, tzinfo=UTC)
    state, _ = apply_decision(person(), "d1", "advice:x", "advice", at, at + timedelta(hours=4))
    assert not guards.tip_showing(state, at.timestamp() + 60).passed
    state, _ = apply_feedback(state, "d1", "ack", at + timedelta(minutes=1))
    assert guards.tip_showing(state, at.timestamp() + 120).passed


def test_nothing_passes_after_deletion_was_requested():
    state = replace(person(), deletion_requested=True)
    results = check_all(state, utc(2026, 5, 4, 12))
    assert not results[0].passed and results[0].name == "deletion"
    assert [r.name for r in results] == list(GUARD_NAMES)
