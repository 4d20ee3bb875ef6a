"""Off-policy estimators and `oo replay`'s reading of logs."""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from domain.offpolicy import (
    QUIET,
    LoggedPoint,
    dr,
    dr_terms,
    effective_sample_size,
    fit_reward_model,
    ips,
    logged_value,
    snips,
)
from domain.priors import fit_priors, load_priors
from oo.replay import from_records, read_jsonl, replay, runs_in, to_points
from topics.records import FeedbackGiven, Tip, TipDecided

pytestmark = pytest.mark.unit
# Three actions: no tip (always 0), a good group and a bad one, by where the person is.
MEANS = {("a", "present"): 0.6, ("b", "present"): -0.3, ("a", "push"): -0.2, ("b", "push"): -0.4}
LOGGER = {QUIET: 0.0, "a": 0.5, "b": 0.5}  # the logger never stays quiet


def target_for(where):
    return {QUIET: 0.6, "a": 0.3, "b": 0.1} if where == "push" else {QUIET: 0.1, "a": 0.8, "b": 0.1}


def true_value(n_present=0.5):
    value = 0.0
    for where, share in (("present", n_present), ("push", 1 - n_present)):
        value += share * sum(p * MEANS.get((a, where), 0.0) for a, p in target_for(where).items())
    return value


def logged(n=6000, seed=3, logger=LOGGER, target=target_for):
    rng = random.Random(seed)
    points = []
    for i in range(n):
        where = "present" if rng.random() < 0.5 else "push"
        actions, weights = zip(*logger.items(), strict=True)
        chosen = rng.choices(actions, weights)[0]
        mean = MEANS.get((chosen, where), 0.0)
        reward = 0.0 if chosen == QUIET else mean + rng.gauss(0.0, 0.5)
        groups = target(where)
        uncovered = groups[QUIET] if logger[QUIET] == 0 else 0.0
        points.append(LoggedPoint(f"user-{i % 300}", chosen, chosen, where, logger[chosen],
                                  groups[chosen], groups, reward, uncovered))
    return points


def test_ips_and_dr_find_the_targets_true_value_within_their_intervals():
    points = logged()
    truth = true_value()
    for estimate in (ips(points, draws=300), dr(points, draws=300), snips(points, draws=300)):
        assert estimate.low <= truth <= estimate.high
        assert estimate.value == pytest.approx(truth, abs=0.05)
    assert logged_value(points).value == pytest.approx(0.5 * (0.15 - 0.3), abs=0.05)


def test_the_estimates_of_the_logging_policy_itself_are_its_logged_value():
    points = logged(target=lambda where: LOGGER)
    assert ips(points).value == pytest.approx(logged_value(points).value)
    assert snips(points).value == pytest.approx(logged_value(points).value)
    assert effective_sample_size(points) == pytest.approx(len(points))


def test_the_doubly_robust_estimate_has_less_variance_than_ips():
    points = logged()
    assert dr(points, draws=300).se < ips(points, draws=300).se


def test_a_wrong_propensity_biases_ips_but_a_good_reward_model_rescues_dr():
    rng = random.Random(5)
    wrong = [LoggedPoint(p.user_id, p.chosen, p.group, p.where,
                         p.logged_p * (0.5 if p.chosen == "a" else 1.0), p.target_p,
                         p.target_groups, p.reward) for p in logged(seed=rng.randrange(99))]
    truth = true_value()
    assert not ips(wrong, draws=200).contains(truth)
    assert abs(dr(wrong, draws=200).value - truth) < abs(ips(wrong, draws=200).value - truth)


def test_the_reward_model_is_zero_for_no_tip_and_fits_each_group_and_place():
    model = fit_reward_model(logged())
    assert model(QUIET, "push") == 0.0
    for (group, where), mean in MEANS.items():
        assert model(group, where) == pytest.approx(mean, abs=0.06)


def test_dr_terms_are_cross_fitted_over_people():
    points = logged(n=400)
    alone = dr_terms(points[:200] + points[200:])
    assert len(alone) == 400 and all(isinstance(t, float) for t in alone)


NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)


def decided(decision_id, tip_id, point, quiet_before=()):
    snapshot = {"point": point}
    if quiet_before:
        snapshot["quiet_before"] = [list(q) for q in quiet_before]
    return TipDecided(event_id=decision_id, user_id="u", occurred_at=NOW, source="oo.engine",
                      decision_id=decision_id, triggered_by="t", moment="app_opened",
                      policy="random", propensity=0.5, reason="r",
                      tip=Tip(id=tip_id, kind="advice", title="T", source="advice"),
                      context_snapshot=snapshot, expires_at=NOW + timedelta(hours=4))


def answer(decision_id, reaction, minutes=5):
    return FeedbackGiven(event_id=f"{decision_id}-{reaction}", user_id="u",
                         occurred_at=NOW + timedelta(minutes=minutes), source="web",
                         decision_id=decision_id, tip_id="advice:a", reaction=reaction)


POINT = {"moment": "app_opened", "bucket": "p", "hour": 12, "n": 2, "chosen": "advice:a",
         "group": "advice:walk", "p": {"random": [0.5, {"advice:walk": 1.0}],
                                       "bandit": [0.7, {"advice:walk": 0.7, "quiet": 0.3}]}}
QUIET_POINT = {"moment": "morning_start", "bucket": "8", "hour": 8, "n": 2, "chosen": "quiet",
               "group": "quiet", "p": {"bandit": [0.9, {"quiet": 0.9, "todo": 0.1}]}}


def test_records_from_the_topics_join_decisions_with_their_first_answer():
    entries, skipped = from_records(
        [decided("d1", "advice:a", POINT, [("q1", 1, QUIET_POINT)]), decided("d1", "advice:a", POINT),
         decided("d2", "advice:a", POINT), decided("d3", "advice:a", None)],
        [answer("d1", "delivered", 1), answer("d1", "seen", 2), answer("d1", "ack"),
         answer("d1", "ack", 9)])
    assert [(e["decision_id"], e["chosen"], e["reward"]) for e in entries] == [
        ("q1", "quiet", 0.0), ("d1", "advice:a", 0.8)]
    assert entries[0]["policy"] == "bandit" and entries[1]["policy"] == "random"
    assert skipped == {"without_point": 1, "unanswered": 1, "quiet_dropped": 0}


def test_points_without_the_candidates_probabilities_are_counted_not_used():
    entries, _ = from_records([decided("d1", "advice:a", POINT, [("q1", 1, QUIET_POINT)])],
                              [answer("d1", "dismiss")])
    points, missing = to_points(entries, "random")
    assert len(points) == 1 and missing == 1
    points, missing = to_points(entries, "bandit")
    assert missing == 0 and [p.target_p for p in points] == [0.9, 0.7]
    with pytest.raises(ValueError, match="shadow"):
        replay(entries, "thompson-9")


def test_a_jsonl_export_is_read_by_run_and_replayed():
    lines = [json.dumps({"run": "random", "user_id": f"u{i % 7}", "decision_id": f"d{i}", "at": i,
                         "policy": "random", "chosen": "advice:a", "group": "advice:walk",
                         "point": POINT, "reaction": "ack" if i % 3 else "dismiss",
                         "reward": 0.8 if i % 3 else -0.4,
                         "sim": {"truth": {"bandit": 0.3}}}) for i in range(60)]
    lines.append(json.dumps({"run": "bandit", "user_id": "u", "point": POINT}))
    entries = read_jsonl(lines, run="random")
    assert runs_in(read_jsonl(lines)) == ["random", "bandit"] and len(entries) == 60
    result = replay(entries, "bandit", draws=100)
    assert result["points"] == 60 and result["truth_on_logged_points"] == pytest.approx(0.3)
    # Only advice:walk was ever taken: IPS gives each point w = 0.7 / 0.5 times its reward.
    mean_reward = sum(e["reward"] for e in entries) / 60
    assert result["ips"]["value"] == pytest.approx(1.4 * mean_reward)


def test_priors_are_fitted_from_answered_tips_and_read_back():
    entries = [{"chosen": "advice:a", "group": "advice:walk", "reaction": "ack", "reward": 0.8,
                "point": {"bucket": "p"}}] * 30 + [
        {"chosen": "todo:t", "group": "todo", "reaction": "dismiss", "reward": -0.4,
         "point": {"bucket": "p"}}] * 10 + [
        {"chosen": "todo:t", "group": "todo", "reaction": "ignored", "reward": -0.5,
         "point": {"bucket": "9"}}] * 10 + [
        {"chosen": "quiet", "group": "quiet", "reaction": None, "reward": 0.0, "point": {}}] * 5
    priors = fit_priors(entries, source="test")
    assert priors.mean("todo") == pytest.approx(-0.4) and priors.mean("advice") == pytest.approx(0.8)
    assert priors.mean("advice:walk") == pytest.approx(0.8)
    assert priors.push_answer < 0.2 < 0.9 < priors.present_answer
    again = load_priors(json.dumps(priors.to_document()))
    assert again.mean("advice:walk") == pytest.approx(0.8, abs=1e-4)
    assert again.push_answer == pytest.approx(priors.push_answer, abs=1e-4)
