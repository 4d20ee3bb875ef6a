import pytest

from domain.reward import ACCEPTED, NO_TIP_REWARD, NOTICED, REWARD, is_answer, reward_of

pytestmark = pytest.mark.unit


def test_the_graded_reward_follows_the_products_order():
    order = ["done", "ack", "save", "snooze", "dismiss", "ignored"]
    values = [REWARD[r] for r in order]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)


def test_silence_is_worth_less_than_a_snooze_and_more_than_a_dismissal():
    assert REWARD["snooze"] > NO_TIP_REWARD == 0.0 > REWARD["dismiss"] > REWARD["ignored"]


def test_delivered_and_seen_are_not_answers_and_carry_no_reward():
    for reaction in ("delivered", "seen"):
        assert reward_of(reaction) is None and not is_answer(reaction)
    for reaction in REWARD:
        assert is_answer(reaction) and reward_of(reaction) == REWARD[reaction]


def test_accepted_means_done_or_ack_and_noticed_is_every_answer_but_ignored():
    assert ACCEPTED == {"done", "ack"}
    assert NOTICED == set(REWARD) - {"ignored"}


def test_every_reaction_of_the_feedback_contract_is_known():
    from domain.features import REACTIONS

    assert set(REWARD) | {"delivered", "seen"} == set(REACTIONS)
