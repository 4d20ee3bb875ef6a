from collections import Counter
from dataclasses import dataclass

import pytest

from domain import policies
from domain.candidates import Tip
from domain.decide import seed_for
from domain.features import UserFeatures
from domain.moments import Moment
from domain.policies import Pick, PolicyRegistry, RandomPolicy, UnknownPolicy

pytestmark = pytest.mark.unit
FEATURES = UserFeatures(user_id="u")
MOMENT = Moment("app_opened")
CANDIDATES = tuple(Tip(f"advice:{i}", "advice", f"Tip {i}", "", "advice") for i in range(5))


def test_random_is_registered_by_name():
    assert "random" in policies.names() and policies.get("random").name == "random"


def test_an_unknown_policy_name_says_which_ones_exist():
    with pytest.raises(UnknownPolicy, match="random"):
        policies.get("thompson-v9")
    with pytest.raises(KeyError):
        policies.get("thompson-v9")


def test_a_policy_name_is_registered_once_unless_replaced():
    registry = PolicyRegistry()
    registry.register(RandomPolicy())
    with pytest.raises(ValueError):
        registry.register(RandomPolicy())
    registry.register(RandomPolicy(), replace=True)
    assert registry.names() == ("random",)


def test_any_object_with_a_name_and_pick_is_a_policy():
    @dataclass(frozen=True)
    class First:
        name: str = "first"

        def pick(self, features, candidates, moment, seed, at=None):
            return Pick(candidates[0], 1.0, {t.id: float(t is candidates[0]) for t in candidates})

    registry = PolicyRegistry()
    registry.register(First())
    assert registry.get("first").pick(FEATURES, CANDIDATES, MOMENT, 0).tip == CANDIDATES[0]
    assert registry.names() == ("first",)


def test_random_picks_nothing_from_nothing():
    assert RandomPolicy().pick(FEATURES, (), MOMENT, 1) is None


def test_random_is_deterministic_for_a_seed():
    picks = {RandomPolicy().pick(FEATURES, CANDIDATES, MOMENT, 42).tip.id for _ in range(20)}
    assert len(picks) == 1


def test_random_propensity_is_one_over_the_number_of_candidates():
    for n in (1, 2, 5):
        chosen = RandomPolicy().pick(FEATURES, CANDIDATES[:n], MOMENT, 7)
        assert chosen.propensity == pytest.approx(1 / n)
        assert chosen.scores == {t.id: pytest.approx(1 / n) for t in CANDIDATES[:n]}
        assert chosen.tip in CANDIDATES[:n]


@pytest.mark.parametrize("seeds", [range(5000), [seed_for(f"decision-{i}") for i in range(5000)]],
                         ids=["small-seeds", "derived-seeds"])
def test_random_is_roughly_uniform_over_many_seeds(seeds):
    counts = Counter(RandomPolicy().pick(FEATURES, CANDIDATES, MOMENT, s).tip.id for s in seeds)
    expected = len(seeds) / len(CANDIDATES)
    assert set(counts) == {t.id for t in CANDIDATES}
    # Chi-square with 4 degrees of freedom: 18.5 is the 0.1% critical value.
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 18.5


def test_different_seeds_give_different_picks_sometimes():
    picks = {RandomPolicy().pick(FEATURES, CANDIDATES, MOMENT, s).tip.id for s in range(50)}
    assert len(picks) > 1
