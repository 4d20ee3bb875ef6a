"""`oo evaluate`: synthetic people with hidden tastes, run through the real decision path."""

import io
import json
import random

import pytest

from oo.evaluate import World, evaluate, policy_for, render, run_policy
from oo.stats import cluster_ratio, paired_ratio_difference, two_proportion_z, wilson
from oo.tastes import Memory, Taste, chances, topic_popularity

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(6, 4, seed=5)


def test_the_same_seed_gives_the_same_people_and_the_same_figures(world):
    again = World.build(6, 4, seed=5)
    assert [p[0] for p in again.people] == [p[0] for p in world.people]
    assert [p[1] for p in again.people] == [p[1] for p in world.people]
    first = run_policy(world, "bandit")
    second = run_policy(again, "bandit")
    assert [t.as_dict() for t in first.tallies] == [t.as_dict() for t in second.tallies]


def test_another_seed_gives_other_people(world):
    other = World.build(6, 4, seed=6)
    assert [p[1] for p in other.people] != [p[1] for p in world.people]


def test_the_oracle_has_no_regret_and_random_has_some(world):
    summary = evaluate(people=6, days=4, seed=5, policies=["random", "oracle"], draws=50)
    by = {p["policy"]: p for p in summary["policies"]}
    assert by["oracle"]["regret_per_day"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert by["random"]["regret_per_day"]["value"] > 0.1
    assert by["random"]["quiet_share"] == 0.0 and by["random"]["sends"] > 0


def test_every_decision_point_is_logged_with_its_propensities(world):
    log = io.StringIO()
    outcome = run_policy(world, "random", shadows=["bandit"], log=log)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len(lines) == sum(t.points for t in outcome.tallies)
    for line in lines:
        probs = line["point"]["p"]
        assert set(probs) == {"random", "bandit"}
        assert probs["random"][0] == pytest.approx(line["propensity"], rel=1e-4)
        assert sum(probs["bandit"][1].values()) == pytest.approx(1.0, abs=1e-4)
        assert line["reward"] is not None and line["run"] == "random"


def test_policy_specs_switch_learned_timing_and_know_the_oracle():
    assert policy_for("random+timing").learned_timing is True
    assert policy_for("bandit-timing").learned_timing is False
    assert policy_for("bandit").learned_timing is True
    frozen = policy_for("bandit-personal")
    assert frozen.personal is False and frozen.learned_timing is False
    assert policy_for("oracle").name == "oracle"
    with pytest.raises(ValueError, match="personal"):
        policy_for("random-personal")


def test_the_report_compares_each_policy_with_the_first():
    summary = evaluate(people=6, days=4, seed=5, policies=["random", "bandit"], draws=50)
    (comparison,) = summary["comparisons"]
    assert comparison["baseline"] == "random" and comparison["policy"] == "bandit"
    assert 0.0 <= comparison["p_value_pooled"] <= 1.0
    text = render(summary, seed=5, people=6, days=4)
    assert "bandit vs random" in text and "acceptance" in text


def test_a_replay_check_sets_the_estimate_beside_the_measured_value():
    summary = evaluate(people=6, days=4, seed=5, policies=["random", "bandit"], draws=50,
                       replay_check="bandit")
    check = summary["replay_check_whole"]
    assert check["target"] == "bandit" and check["loggers"] == ["random"]
    assert check["measured"]["value"] == summary["policies"][1]["reward_per_point"]["value"]
    with pytest.raises(ValueError, match="logging policy"):
        evaluate(people=2, days=1, seed=5, policies=["bandit"], replay_check="bandit")


def test_a_warm_up_cohort_fits_topic_priors():
    summary = evaluate(people=3, days=3, seed=5, policies=["bandit"], draws=20, warmup=8)
    priors = summary["priors"]
    assert priors["source"].startswith("oo evaluate warm-up") and "todo" in priors["groups"]
    assert any(g.startswith("advice:") for g in priors["groups"])


def test_hidden_tastes_make_liked_groups_and_answer_hours_matter():
    taste = Taste.generate(random.Random(1), topic_popularity(), wake_minute=7 * 60)
    liked = max(taste.likes, key=taste.likes.get)
    disliked = min(taste.likes, key=taste.likes.get)
    best_hour = max(range(168), key=lambda h: taste.push_answer[h])
    worst_hour = min(range(168), key=lambda h: taste.push_answer[h])
    from datetime import UTC, datetime, timedelta

    monday = datetime(2026, 3, 2, tzinfo=UTC)

    def reward(group, hour, present=False):
        local = monday + timedelta(hours=hour)
        ch = chances(taste, Memory(), group=group, tip_id="x", moment="morning_start",
                     present=present, local=local, at=local.timestamp())
        return ch.expected_reward("advice")

    assert reward(liked, best_hour) > reward(disliked, best_hour)
    assert reward(liked, best_hour) > reward(liked, worst_hour)


def test_a_tired_person_accepts_less():
    taste = Taste.generate(random.Random(2), topic_popularity(), wake_minute=7 * 60)
    from datetime import UTC, datetime

    at = datetime(2026, 3, 2, 12, tzinfo=UTC)
    rested, tired = Memory(), Memory()
    for i in range(5):
        tired.received(f"t{i}", at.timestamp() - 3600 * i)
    kwargs = {"group": "todo", "tip_id": "x", "moment": "app_opened", "present": True,
              "local": at, "at": at.timestamp()}
    assert chances(taste, tired, **kwargs).accept < chances(taste, rested, **kwargs).accept


def test_wilson_and_z_test_behave_at_their_edges():
    low, high = wilson(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35
    assert wilson(5, 0) == (0.0, 0.0)
    z, p = two_proportion_z(10, 100, 30, 100)
    assert z > 3 and p < 0.001
    assert two_proportion_z(10, 100, 10, 100) == (0.0, 1.0)


def test_cluster_intervals_resample_people():
    clusters = [(1.0, 4.0), (3.0, 4.0), (0.0, 4.0), (2.0, 4.0)] * 10
    estimate = cluster_ratio(clusters, draws=300, seed=1)
    assert estimate.value == pytest.approx(0.375) and estimate.low < 0.375 < estimate.high
    same = [((1.0, 4.0), (1.0, 4.0))] * 20
    diff, p = paired_ratio_difference(same, draws=100)
    assert diff.value == 0.0 and p == 1.0
    better = [((1.0, 10.0), (5.0, 10.0)), ((2.0, 10.0), (6.0, 10.0))] * 15
    diff, p = paired_ratio_difference(better, draws=300)
    assert diff.value == pytest.approx(0.4) and p < 1e-6
