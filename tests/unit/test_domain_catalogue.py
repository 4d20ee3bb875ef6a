import copy
import json
from importlib import resources

import pytest

from domain.catalogue import (
    MAX_BODY,
    MAX_TITLE,
    CatalogueError,
    default_catalogue,
    load_catalogue,
    parse_catalogue,
)
from domain.clock import TIMES_OF_DAY
from domain.moments import MOMENTS

pytestmark = pytest.mark.unit


def shipped() -> dict:
    return json.loads(resources.files("domain").joinpath("advice.json").read_text("utf-8"))


def test_the_shipped_catalogue_loads_with_at_least_forty_advices():
    assert len(default_catalogue().advices) >= 40


def test_the_shipped_catalogue_has_unique_ids():
    ids = [a.id for a in default_catalogue().advices]
    assert len(ids) == len(set(ids))


def test_the_shipped_catalogue_covers_every_moment():
    assert default_catalogue().moments_covered() == frozenset(MOMENTS)


def test_the_shipped_advices_are_short():
    for advice in default_catalogue().advices:
        assert 0 < len(advice.title) <= MAX_TITLE and 0 < len(advice.body) <= MAX_BODY


@pytest.mark.parametrize("moment", MOMENTS)
def test_every_moment_has_advice_at_every_waking_time_of_day_for_some_mood(moment):
    catalogue = default_catalogue()
    for time_of_day in ("morning", "afternoon", "evening"):
        fits = [catalogue.matching(moment, mood_low=low, time_of_day=time_of_day,
                                   after_meeting=after)
                for low in (False, True) for after in (False, True)]
        if moment == "morning_start" and time_of_day != "morning":
            continue  # the morning moment only happens in the morning
        assert any(fits), (moment, time_of_day)


def test_low_mood_advice_is_there_when_the_mood_is_low():
    fits = default_catalogue().matching("low_mood", mood_low=True, time_of_day="afternoon",
                                        after_meeting=False)
    assert any(a.mood == "low" for a in fits)


def test_conditions_filter_advices():
    catalogue = default_catalogue()
    morning = catalogue.matching("morning_start", mood_low=False, time_of_day="morning",
                                 after_meeting=False)
    assert morning and all("morning" in a.times_of_day for a in morning)
    low = catalogue.matching("app_opened", mood_low=True, time_of_day="morning",
                             after_meeting=False)
    assert all(a.mood != "not_low" for a in low)
    not_after = catalogue.matching("free_after_meeting", mood_low=False, time_of_day="afternoon",
                                   after_meeting=False)
    assert all(a.after_meeting is not True for a in not_after)


def broken(mutate) -> dict:
    document = copy.deepcopy(shipped())
    mutate(document)
    return document


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda d: d["advices"].append(copy.deepcopy(d["advices"][0])), "duplicate id"),
    (lambda d: d["advices"][0].update(moments=["bedtime"]), "unknown moment bedtime"),
    (lambda d: d["advices"][0].update(title="x" * (MAX_TITLE + 1)), "title must be"),
    (lambda d: d["advices"][0].update(body="x" * (MAX_BODY + 1)), "body must be"),
    (lambda d: d["advices"][0].update(body=""), "body must be"),
    (lambda d: d["advices"][0].update(id="Not An Id"), "id must be"),
    (lambda d: d["advices"][0].update(colour="blue"), "unknown key colour"),
    (lambda d: d["advices"][0].pop("topic"), "missing topic"),
    (lambda d: d["advices"][0]["conditions"].update(mood="sad"), "mood must be"),
    (lambda d: d["advices"][0]["conditions"].update(time_of_day=["noon"]), "time_of_day"),
    (lambda d: d["advices"][0]["conditions"].update(after_meeting="yes"), "after_meeting"),
    (lambda d: d["advices"][0]["conditions"].update(weather="rain"), "unknown condition"),
    (lambda d: d.update(version=2), "version must be 1"),
    (lambda d: d.update(advices=[a for a in d["advices"] if "habit_window" not in a["moments"]]),
     "no advice for moments habit_window"),
])
def test_a_broken_catalogue_is_refused_with_the_reason(mutate, problem):
    with pytest.raises(CatalogueError, match=problem):
        parse_catalogue(broken(mutate))


def test_every_problem_is_listed_at_once():
    def two_problems(d):
        d["advices"][0]["title"] = ""
        d["advices"][1]["moments"] = ["nap"]
    with pytest.raises(CatalogueError) as err:
        parse_catalogue(broken(two_problems))
    assert "title must be" in str(err.value) and "unknown moment nap" in str(err.value)


def test_text_that_is_not_json_is_refused():
    with pytest.raises(CatalogueError, match="not JSON"):
        load_catalogue("{advices: ")


def test_times_of_day_in_the_catalogue_are_the_clock_buckets():
    assert all(a.times_of_day <= frozenset(TIMES_OF_DAY) for a in default_catalogue().advices)
