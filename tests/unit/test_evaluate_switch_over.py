"""`oo evaluate --replay-check`: replay against running, like with like (switch-over, canary)."""

from dataclasses import dataclass, field, replace

import pytest

from domain.candidates import Tip
from domain.features import UserFeatures
from domain.learning import Learned
from domain.moments import Moment
from domain.policies import QUIET, Pick
from oo.evaluate import (
    DEFAULT_START,
    Frozen,
    World,
    evaluate,
    in_canary,
    policy_for,
    run_policy,
    switch_time,
    window_value,
)

pytestmark = pytest.mark.unit
MOMENT = Moment("app_opened")
CANDIDATES = tuple(Tip(f"advice:{i}", "advice", f"Tip {i}", "", "advice") for i in range(3))
T0 = DEFAULT_START.timestamp()
DAY = 24 * 3600.0


@dataclass
class Recorder:
    """A policy that stays quiet and remembers the knowledge it decided with."""

    name: str = "recorder"
    seen: list = field(default_factory=list)

    def pick(self, features, candidates, moment, seed, at=None):
        self.seen.append(features.learned.stored().get("t"))
        return Pick(None, 1.0, {QUIET: 1.0})


def features(user_id, updated_at):
    return UserFeatures(user_id=user_id, learned=Learned({"t": updated_at}))


def test_a_frozen_policy_keeps_each_persons_knowledge_from_its_first_decision_after_since():
    inner = Recorder()
    frozen = Frozen(inner, since=T0 + DAY, name="recorder@d1")
    frozen.pick(features("a", 1), CANDIDATES, MOMENT, 1, T0)  # before: learns
    frozen.pick(features("a", 2), CANDIDATES, MOMENT, 1, T0 + DAY)  # frozen here
    frozen.pick(features("a", 3), CANDIDATES, MOMENT, 1, T0 + 2 * DAY)
    frozen.pick(features("b", 4), CANDIDATES, MOMENT, 1, T0 + 3 * DAY)  # another person
    frozen.pick(features("b", 5), CANDIDATES, MOMENT, 1, T0 + 4 * DAY)
    assert inner.seen == [1, 2, 2, 4, 4]


def test_policy_specs_freeze_a_policy_after_some_days():
    frozen = policy_for("bandit@d7")
    assert isinstance(frozen, Frozen) and frozen.name == "bandit@d7"
    assert frozen.since == T0 + 7 * DAY and frozen.inner.name == "bandit"
    assert frozen.learned_timing is False  # the inner one's, applied on frozen knowledge
    assert policy_for("bandit-timing@d2.5").since == T0 + 2.5 * DAY
    with pytest.raises(ValueError, match="days"):
        policy_for("bandit@dlater")


def test_a_frozen_bandit_holds_pushes_back_by_its_frozen_timing():
    silent = Learned({"t": int(T0), "h": {str(h): [20.0, 0.0] for h in range(168)}})
    person = replace(UserFeatures(user_id="u"), learned=silent)
    frozen = policy_for("bandit@d0")
    pushed = frozen.pick(person, CANDIDATES, Moment("morning_start"), 3, T0 + DAY)
    assert pushed == Pick(None, 1.0, {QUIET: 1.0})
    # The person is answering again: the frozen bandit does not know it.
    answering = replace(person, learned=Learned({"t": int(T0)}))
    assert frozen.pick(answering, CANDIDATES, Moment("morning_start"), 3, T0 + DAY) == pushed
    assert policy_for("bandit@d9").pick(answering, CANDIDATES, Moment("morning_start"), 3,
                                        T0 + DAY) != pushed


def test_a_switch_over_run_is_the_loggers_until_the_switch_then_the_candidates():
    world = World.build(5, 3, seed=8)
    logged, switched = [], []
    run_policy(world, "random", shadows=["bandit@d1.5"], collect=logged.append)
    outcome = run_policy(world, "random", then="bandit@d1.5", switch_day=1.5,
                         collect=switched.append)
    assert outcome.policy == "random>bandit@d1.5 from day 1.5"
    since = switch_time(world, 1.5)

    def before(entries):
        return sorted((e["decision_id"], e["chosen"], e["reward"]) for e in entries
                      if e["at"] < since)

    assert before(switched) == before(logged) and before(logged)
    after = [e for e in switched if e["at"] >= since]
    assert after and {e["policy"] for e in after} == {"bandit@d1.5"}
    assert {e["policy"] for e in logged} == {"random"}
    with pytest.raises(ValueError, match="day"):
        run_policy(world, "random", then="bandit", switch_day=3)


def test_a_canary_gives_a_stable_share_of_the_decisions_to_the_candidate():
    ids = [f"{i:032x}" for i in range(4000)]
    picked = [i for i in ids if in_canary(i, 0.2)]
    assert 700 < len(picked) < 900
    assert picked == [i for i in ids if in_canary(i, 0.2)]
    assert set(picked) <= {i for i in ids if in_canary(i, 0.5)}
    assert not any(in_canary(i, 0.0) for i in ids)


def test_a_canary_run_lets_the_candidate_decide_its_share_of_the_points():
    world = World.build(5, 3, seed=8)
    entries = []
    run_policy(world, "random", canary="bandit", canary_share=0.3, collect=entries.append)
    mine = [e for e in entries if e["policy"] == "bandit"]
    assert mine and all(in_canary(e["decision_id"], 0.3) for e in mine)
    assert all(not in_canary(e["decision_id"], 0.3) for e in entries if e["policy"] == "random")
    with pytest.raises(ValueError, match="share"):
        run_policy(world, "random", canary="bandit", canary_share=1.0)


def test_the_value_of_a_window_counts_its_points_and_every_person():
    entries = [{"user_id": user, "at": at, "reward": reward}
               for user, at, reward in (("a", 5, 1.0), ("a", 15, 0.5), ("b", 20, -0.5),
                                        ("b", 21, 0.0), ("b", 22, None))]
    value = window_value(entries, ["a", "b", "c"], since=10, draws=50)
    assert value["value"] == pytest.approx(0.0)  # (0.5 - 0.5 + 0) / 3
    assert value["low"] <= value["value"] <= value["high"]


def test_the_replay_check_compares_the_switch_over_and_reports_the_whole_run():
    summary = evaluate(people=6, days=4, seed=5, policies=["random", "bandit"], draws=50,
                       replay_check="bandit")
    check, whole = summary["replay_check"], summary["replay_check_whole"]
    assert check["protocol"] == "switch-over" and check["switch_day"] == 2
    assert check["target"] == "bandit@d2" and check["loggers"] == ["random"]
    assert check["points"] < whole["points"]
    assert "measured_inside_dr_interval" in check and "truth_on_logged_points" in check
    assert -1.0 < check["expected_by_running"] < 1.0 and "expected_by_running" in whole
    assert whole["target"] == "bandit"
    canary = summary["replay_check_canary"]
    assert canary["protocol"] == "canary" and canary["share"] == 0.2
    assert canary["ips"] == whole["ips"] and canary["canary_points"] > 0
    assert whole["measured"]["value"] == summary["policies"][1]["reward_per_point"]["value"]
    with pytest.raises(ValueError, match="switch-over day"):
        evaluate(people=2, days=2, seed=5, policies=["random", "bandit"], replay_check="bandit",
                 switch_day=2)
