"""Guards: the reasons not to speak now, each a named pure check.

A guard takes the person's features and an instant (`at`, epoch seconds) and
says whether a tip may be given, with a short reason either way, so a skipped
moment can always be explained ("quiet hours: 23:10 local ...").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.clock import hhmm, in_daily_window, minute_of_day
from domain.features import UserFeatures
from domain.learning import PRESENT, timing_bucket
from domain.priors import DEFAULT_PRIORS, Priors

MIN_SPACING_S = 90 * 60
# Two dismissals in a row, or a dismissal and an ignored tip, are enough for today;
# with a 12 h half-life the person is left alone for roughly half a day.
FATIGUE_LIMIT = 1.5
# Learned timing: a push is held back at an hour of week where the person has
# answered under TIMING_FLOOR of tips, once TIMING_MIN_EVIDENCE (smoothed,
# decayed) tips there say so. Evidence fades (domain.learning), so a held-back
# hour is tried again now and then.
TIMING_FLOOR = 0.3
TIMING_MIN_EVIDENCE = 1.5


@dataclass(frozen=True, slots=True)
class GuardResult:
    """The verdict of one guard: its name, whether the tip may go, and why."""

    name: str
    passed: bool
    reason: str


Guard = Callable[[UserFeatures, float], GuardResult]


def deletion(features: UserFeatures, at: float) -> GuardResult:
    """Blocks everything once the person asked for their data to be deleted."""
    if features.deletion_requested:
        return GuardResult("deletion", False, "the person asked for deletion")
    return GuardResult("deletion", True, "no deletion requested")


def profile(features: UserFeatures, at: float) -> GuardResult:
    """Blocks until the person's preferences are known (their account's lifecycle event).

    Topics are read independently, so a person's first signals can arrive before
    the event that tells their time zone and quiet hours: without it, quiet hours
    would be read on UTC and a tip could wake someone at night.
    """
    if features.prefs.changed_at is None:
        return GuardResult("profile", False, "the person's time zone and quiet hours are not known yet")
    return GuardResult("profile", True, f"preferences known ({features.prefs.time_zone})")


def quiet_hours(features: UserFeatures, at: float) -> GuardResult:
    """Blocks inside the person's quiet hours, read on their local wall clock (DST-safe)."""
    p = features.prefs
    wall = features.local_time(at)
    window = f"{hhmm(p.quiet_start_minute)}-{hhmm(p.quiet_end_minute)}"
    now = f"{wall:%H:%M} local ({p.time_zone})"
    if in_daily_window(minute_of_day(wall), p.quiet_start_minute, p.quiet_end_minute):
        return GuardResult("quiet_hours", False, f"{now} is within quiet hours {window}")
    return GuardResult("quiet_hours", True, f"{now} is outside quiet hours {window}")


def daily_budget(features: UserFeatures, at: float) -> GuardResult:
    """Blocks once the person's daily budget of tips is spent (the day is their local day)."""
    given, budget = features.tips_on_day_of(at), features.prefs.daily_budget
    if given >= budget:
        return GuardResult("daily_budget", False, f"{given} of {budget} tips given today")
    return GuardResult("daily_budget", True, f"{given} of {budget} tips given today")


def spacing(features: UserFeatures, at: float) -> GuardResult:
    """Blocks within MIN_SPACING_S of the last tip (or before it, for a late trigger)."""
    last = features.last_tip_at
    if last is None:
        return GuardResult("spacing", True, "no tip given yet")
    elapsed_min = int((at - last) // 60)
    if at - last < MIN_SPACING_S:
        return GuardResult("spacing", False,
                           f"last tip {elapsed_min} min ago, under {MIN_SPACING_S // 60} min")
    return GuardResult("spacing", True, f"last tip {elapsed_min} min ago")


def fatigue(features: UserFeatures, at: float) -> GuardResult:
    """Blocks while fatigue (raised by dismissals and ignored tips, decaying) is at the limit."""
    level = features.fatigue_level(at)
    if level >= FATIGUE_LIMIT:
        return GuardResult("fatigue", False, f"fatigue {level:.2f} at or over {FATIGUE_LIMIT}")
    return GuardResult("fatigue", True, f"fatigue {level:.2f} under {FATIGUE_LIMIT}")


def busy(features: UserFeatures, at: float) -> GuardResult:
    """Blocks during a busy calendar event."""
    event = features.current_event(at)
    if event is not None:
        left_min = int((event.ends_at - at) // 60)
        return GuardResult("busy", False, f"in a busy calendar event for {left_min} more min")
    return GuardResult("busy", True, "no busy calendar event now")


def tip_showing(features: UserFeatures, at: float) -> GuardResult:
    """Blocks while the previous tip is still on screen, unanswered and not expired."""
    showing = features.showing_at(at)
    if showing is not None:
        return GuardResult("tip_showing", False,
                           f"tip {showing.tip_id} is still showing, unanswered")
    return GuardResult("tip_showing", True, "no unanswered tip showing")


# Order matters only for which failure is reported first: the most absolute first.
GUARDS: tuple[Guard, ...] = (deletion, profile, quiet_hours, daily_budget, spacing, fatigue, busy,
                             tip_showing)
GUARD_NAMES = ("deletion", "profile", "quiet_hours", "daily_budget", "spacing", "fatigue", "busy",
               "tip_showing")


def check_all(features: UserFeatures, at: float,
              guards: tuple[Guard, ...] = GUARDS) -> tuple[GuardResult, ...]:
    """Every guard's verdict at `at`, in order (all of them, not only up to the first failure)."""
    return tuple(guard(features, at) for guard in guards)


def learned_timing(features: UserFeatures, at: float, moment: str,
                   priors: Priors = DEFAULT_PRIORS) -> GuardResult:
    """Holds a tip back at a moment this person does not answer (learned, per hour of week).

    Not one of GUARDS: it belongs to the policies that use learned timing
    (`learned_timing = True`), which is how the A/B test keeps the baseline's
    moments fixed. It never opens anything the other guards close: they run
    first, so quiet hours and the budget always win. A moment that finds the
    person at their device (the app just opened) is never held back.
    `priors` are the policy's global priors (the prior chance of an answer).
    """
    wall = features.local_time(at)
    bucket = timing_bucket(moment, wall.weekday(), wall.hour)
    odds = features.learned.answer_odds(bucket, at, push_prior=priors.push_answer,
                                        present_prior=priors.present_answer)
    where = "at their device" if bucket == PRESENT else f"around {wall:%a %H}:00"
    said = (f"answers {odds.mean:.0%} of tips {where} "
            f"(evidence {odds.evidence:.1f}, floor {TIMING_FLOOR:.0%})")
    if bucket != PRESENT and odds.evidence >= TIMING_MIN_EVIDENCE and odds.mean < TIMING_FLOOR:
        return GuardResult("learned_timing", False, "learned timing: " + said)
    return GuardResult("learned_timing", True, "learned timing: " + said)
