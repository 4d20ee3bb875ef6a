"""The learned policy: Thompson sampling over tips and no tip now, its updates and propensities."""

import dataclasses
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from domain import bandit
from domain.bandit import (
    BURDEN_PRICE,
    QUIET,
    REPEAT_HALF_LIFE_S,
    REPEAT_PENALTY,
    arm_group,
    burden_price,
    content_belief,
    distribution,
    repeat_penalty,
)
from domain.candidates import Tip
from domain.decide import Decision, Skip, decide, seed_for
from domain.features import UserFeatures, apply_decision, apply_feedback, fold
from domain.learning import Learned, Sent
from domain.moments import Moment, SignalTrigger
from domain.policies import Assignment, BanditPolicy, Pick, get, resolve
from domain.priors import Priors
from topics.records import ContextObserved, LifecycleChanged

pytestmark = pytest.mark.unit
NOW = datetime(2026, 5, 4, 10, tzinfo=UTC)  # 12:00 in Paris
AT = NOW.timestamp()
APP = Moment("app_opened")
TIPS = (Tip("todo:t1", "todo", "Pay rent", "", "todos"),
        Tip("advice:a", "advice", "Breathe", "", "advice", meta={"topic": "breathing"}),
        Tip("advice:b", "advice", "Walk", "", "advice", meta={"topic": "walk"}),
        Tip("advice:c", "advice", "Walk more", "", "advice", meta={"topic": "walk"}))


def person() -> UserFeatures:
    state, _ = fold(None, LifecycleChanged(
        event_id="l", user_id="u", occurred_at=NOW - timedelta(days=30), source="t",
        change="user_created", time_zone="Europe/Paris"), "lifecycle")
    return state


def answer(state, group, reaction, at=NOW - timedelta(days=1), moment="app_opened", n=1):
    for i in range(n):
        decision_id = f"{group}-{reaction}-{i}-{at.timestamp()}"
        state, _ = apply_decision(state, decision_id, f"x:{decision_id}", "advice", at,
                                  at + timedelta(hours=4), moment=moment, group=group,
                                  policy="bandit")
        state, _ = apply_feedback(state, decision_id, reaction, at + timedelta(minutes=5))
    return state


def test_arm_groups_are_todo_habit_and_advice_by_topic():
    assert [arm_group(t) for t in TIPS] == ["todo", "advice:breathing", "advice:walk", "advice:walk"]
    assert arm_group(Tip("habit:h", "todo", "Read", "", "habits")) == "habit"
    assert arm_group(Tip("advice:z", "advice", "Z", "", "advice")) == "advice"


def test_an_acceptance_raises_the_groups_belief_and_a_dismissal_lowers_it():
    before = content_belief(Learned(), "advice:walk", AT)
    liked = content_belief(answer(person(), "advice:walk", "ack").learned, "advice:walk", AT)
    disliked = content_belief(answer(person(), "advice:walk", "dismiss").learned, "advice:walk", AT)
    assert disliked.mean < before.mean < liked.mean
    assert liked.sd < before.sd and disliked.sd < before.sd


def test_the_belief_converges_to_the_groups_mean_reward():
    learned = answer(person(), "todo", "done", n=40).learned
    assert content_belief(learned, "todo", AT).mean == pytest.approx(1.0, abs=0.1)


def test_answers_to_one_topic_move_the_untried_topics_of_the_same_family():
    state = answer(person(), "advice:walk", "dismiss", n=5)
    untried = content_belief(state.learned, "advice:sleep", AT)
    assert untried.mean < content_belief(Learned(), "advice:sleep", AT).mean
    assert content_belief(state.learned, "todo", AT) == content_belief(Learned(), "todo", AT)


def test_global_priors_set_the_starting_belief_of_a_group():
    priors = Priors({"advice": 0.0, "advice:water": 0.5, "todo": 0.2, "habit": 0.2})
    assert content_belief(Learned(), "advice:water", AT, priors).mean == pytest.approx(0.5)
    assert content_belief(Learned(), "advice:sleep", AT, priors).mean == pytest.approx(0.0)


def test_the_repeat_penalty_is_full_just_after_and_recovers_by_half_each_half_life():
    state, _ = apply_decision(person(), "d", "advice:a", "advice", NOW, NOW + timedelta(hours=4))
    assert repeat_penalty(state, "advice:a", AT) == pytest.approx(REPEAT_PENALTY)
    assert repeat_penalty(state, "advice:a", AT + REPEAT_HALF_LIFE_S) == pytest.approx(
        REPEAT_PENALTY / 2)
    assert repeat_penalty(state, "advice:a", AT + 10 * REPEAT_HALF_LIFE_S) < REPEAT_PENALTY / 1000
    assert repeat_penalty(state, "advice:b", AT) == 0.0


def test_a_recently_given_tip_is_picked_less_often_until_it_recovers():
    liked = answer(person(), "advice:walk", "ack", n=5)
    given, _ = apply_decision(liked, "d", "advice:b", "advice", NOW, NOW + timedelta(minutes=1))
    alone = (TIPS[0], TIPS[2])  # the recently given tip against a todo

    def share(state, at):
        return distribution(state, alone, "app_opened", at, random.Random(1),
                            draws=400).probability("advice:b")

    never = share(liked, AT + 60)
    just_after = share(given, AT + 60)
    recovered = share(given, AT + 8 * REPEAT_HALF_LIFE_S)
    assert just_after < never - 0.2
    assert recovered == pytest.approx(share(liked, AT + 8 * REPEAT_HALF_LIFE_S), abs=0.05)
    # Within a group, the tip given longer ago goes first.
    walk = distribution(given, (TIPS[2], TIPS[3]), "app_opened", AT + 60, random.Random(1))
    assert walk.probability("advice:b") < walk.probability("advice:c")


def test_the_burden_price_grows_with_fatigue_up_to_its_cap():
    rested = person()
    tired, _ = apply_feedback(rested, "x", "dismiss", NOW)
    spent = rested
    for i in range(5):
        spent, _ = apply_feedback(spent, f"x{i}", "dismiss", NOW)
    assert burden_price(rested, AT) == 0.0
    assert 0.0 < burden_price(tired, AT) < BURDEN_PRICE == burden_price(spent, AT)


def test_a_spent_burden_budget_makes_silence_more_likely():
    state = answer(person(), "advice:walk", "ack", n=2)
    spent = state
    for i in range(3):
        spent, _ = apply_feedback(spent, f"x{i}", "dismiss", NOW)
    fresh = distribution(state, TIPS, "app_opened", AT, random.Random(3), draws=400)
    tired = distribution(spent, TIPS, "app_opened", AT, random.Random(3), draws=400)
    assert tired.probability(QUIET) > fresh.probability(QUIET)


def test_probabilities_cover_every_action_sum_to_one_and_keep_a_floor():
    dist = distribution(person(), TIPS, "app_opened", AT, random.Random(7))
    assert dist.actions == (QUIET, *(t.id for t in TIPS))
    assert sum(dist.probabilities) == pytest.approx(1.0)
    assert min(dist.probabilities) >= bandit.EXPLORE / (len(TIPS) + 1) - 1e-12


def test_the_same_seed_gives_the_same_pick_and_propensities():
    policy = BanditPolicy()
    picks = {(p.action, p.propensity, tuple(p.scores.items()))
             for p in (policy.pick(person(), TIPS, APP, 42, AT) for _ in range(5))}
    assert len(picks) == 1


def test_the_propensity_is_the_probability_of_the_action_taken():
    policy = BanditPolicy()
    for seed in range(30):
        pick = policy.pick(person(), TIPS, APP, seed, AT)
        assert pick.propensity == pick.scores[pick.action]
        assert sum(pick.scores.values()) == pytest.approx(1.0)


def test_the_draws_follow_the_logged_propensities():
    policy = BanditPolicy()
    state = answer(person(), "todo", "done", n=2)
    picks = [policy.pick(state, TIPS, APP, seed_for(f"d{i}"), AT) for i in range(600)]
    counts = Counter(p.action for p in picks)
    for action, count in counts.items():
        mean = sum(p.scores[action] for p in picks) / len(picks)
        assert count / len(picks) == pytest.approx(mean, abs=0.06)


def test_no_tip_now_wins_when_every_tip_is_expected_to_be_dismissed():
    state = person()
    for group in ("todo", "advice:breathing", "advice:walk"):
        state = answer(state, group, "dismiss", n=6)
    dist = distribution(state, TIPS, "app_opened", AT, random.Random(5), draws=300)
    assert dist.probability(QUIET) > 0.9


def test_a_push_at_an_hour_the_person_ignores_is_mostly_not_sent():
    state = answer(person(), "todo", "done", n=3)  # they like their todos
    for day in range(1, 6):  # but never answer at noon on a push
        state = answer(state, "todo", "ignored", at=NOW - timedelta(days=day),
                       moment="todo_due_soon")
    at_noon = distribution(state, TIPS[:1], "todo_due_soon", AT, random.Random(2), draws=300)
    at_device = distribution(state, TIPS[:1], "app_opened", AT, random.Random(2), draws=300)
    assert at_noon.probability(QUIET) > 0.8 > at_device.probability(QUIET)


def test_the_bandit_learns_to_prefer_the_group_a_person_accepts():
    """A tiny closed loop: the person accepts walk advice, dismisses everything else."""
    state, policy, rng = person(), BanditPolicy(learned_timing=False), random.Random(11)
    chosen = []
    for i in range(60):
        at = NOW + timedelta(hours=3 * i)
        pick = policy.pick(state, TIPS, APP, seed_for(f"loop-{i}"), at.timestamp())
        if pick.tip is None:
            continue
        decision_id = f"loop-{i}"
        state, _ = apply_decision(state, decision_id, pick.tip.id, pick.tip.kind, at,
                                  at + timedelta(hours=1), moment="app_opened",
                                  group=arm_group(pick.tip), policy="bandit")
        liked = arm_group(pick.tip) == "advice:walk"
        reaction = "ack" if liked and rng.random() < 0.9 else "dismiss"
        state, _ = apply_feedback(state, decision_id, reaction, at + timedelta(minutes=5))
        chosen.append(arm_group(pick.tip))
    late = chosen[-15:]
    assert late.count("advice:walk") / len(late) > 0.7
    assert chosen[:10].count("advice:walk") < 10  # it had to find out


def test_the_bandit_is_registered_and_its_quiet_choice_is_a_logged_skip():
    assert get("bandit").name == "bandit"

    class Quiet:
        name = "quiet-one"
        learned_timing = False

        def pick(self, features, candidates, moment, seed, at=None):
            return Pick(None, 0.7, {QUIET: 0.7, **{t.id: 0.3 / len(candidates)
                                                   for t in candidates}})

    state = person()
    event = ContextObserved(event_id="c1", user_id="u", occurred_at=NOW, source="t",
                            kind="app_opened")
    state, _ = fold(state, event, "context")
    skip = decide(state, SignalTrigger(event, "context"), NOW, policy=Quiet())
    assert isinstance(skip, Skip) and skip.stage == "quiet" and skip.propensity == 0.7
    assert skip.point["chosen"] == "quiet" and skip.point["p"]["quiet-one"][0] == 0.7


def test_assignment_is_stable_reproducible_and_splits_people():
    ab = Assignment("ab-test", (("random", 0.5), ("bandit", 0.5)), salt="s1")
    users = [f"user-{i}" for i in range(2000)]
    first = [ab.assign(u) for u in users]
    assert first == [ab.assign(u) for u in users]
    share = first.count("bandit") / len(first)
    assert 0.45 < share < 0.55
    reshuffled = Assignment("ab-test", ab.arms, salt="s2")
    assert sum(a != reshuffled.assign(u) for a, u in zip(first, users, strict=True)) > 600
    assert resolve(get("ab"), "user-1").name in ("random", "bandit")


def test_a_decision_under_an_assignment_names_the_assigned_policy():
    state = person()
    event = ContextObserved(event_id="c2", user_id="u", occurred_at=NOW, source="t",
                            kind="app_opened")
    state, _ = fold(state, event, "context")
    result = decide(state, SignalTrigger(event, "context"), NOW, policy="ab")
    assigned = get("ab").assign("u")  # type: ignore[attr-defined]
    if isinstance(result, Decision):
        assert result.policy == assigned
        assert result.context_snapshot["point"]["assignment"] == "ab"
    else:
        assert result.policy == assigned and result.point["assignment"] == "ab"


def test_timing_statistics_from_the_sent_row_not_the_answer_time():
    learned = Learned().with_sent(Sent("d", "todo", "9", "bandit", 0))
    learned, credited = learned.with_answer("d", "done", 10_000)
    assert credited is not None and learned.rates() == {"9": (1.0, 1.0)}


def test_without_personal_learning_the_bandit_decides_on_global_priors_alone():
    learned = answer(person(), "todo", "dismiss", n=8)
    personal, general = BanditPolicy(), BanditPolicy(personal=False)
    seeds = range(200)
    quiet_personal = sum(personal.pick(learned, TIPS[:1], APP, s, AT).tip is None for s in seeds)
    quiet_general = sum(general.pick(learned, TIPS[:1], APP, s, AT).tip is None for s in seeds)
    assert quiet_personal > quiet_general
    # Only the learned statistics are set aside: the burden (fatigue) still counts.
    unlearned = dataclasses.replace(learned, learned=Learned())
    assert [general.pick(learned, TIPS, APP, s, AT).action for s in seeds] == [
        general.pick(unlearned, TIPS, APP, s, AT).action for s in seeds]
