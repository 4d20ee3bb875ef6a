from datetime import UTC, datetime, timedelta

import pytest

from domain.reactions import Apply, Refuse, Repeat, react

pytestmark = pytest.mark.unit
NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)


def on(status="delivered", kind="todo", reaction="done", expires_at=LATER, snooze_until=None):
    return react(status=status, kind=kind, expires_at=expires_at, reaction=reaction,
                 snooze_until=snooze_until, now=NOW)


@pytest.mark.parametrize(("kind", "reaction", "status"), [
    ("todo", "done", "done"), ("advice", "ack", "ack"), ("todo", "save", "saved"),
    ("advice", "dismiss", "dismissed"), ("todo", "seen", "seen"),
])
def test_an_open_tip_takes_one_answer(kind, reaction, status):
    assert on(kind=kind, reaction=reaction) == Apply(status)
    assert on(status="seen", kind=kind, reaction=reaction) == (
        Repeat() if reaction == "seen" else Apply(status))


def test_snooze_needs_a_time_in_the_next_seven_days():
    assert on(reaction="snooze", snooze_until=NOW + timedelta(hours=1)) == Apply("snoozed")
    for until in (None, NOW, NOW - timedelta(minutes=1), NOW + timedelta(days=8)):
        assert isinstance(on(reaction="snooze", snooze_until=until), Refuse)
    assert on(reaction="done", snooze_until=LATER) == Refuse(400, "snooze_until is only for snooze")


def test_done_is_for_todos_and_ack_for_advices():
    assert on(kind="advice", reaction="done").status == 400
    assert on(kind="todo", reaction="ack").status == 400


def test_the_same_answer_again_is_a_harmless_repeat_and_another_is_a_conflict():
    assert on(status="done", reaction="done") == Repeat()
    conflict = on(status="done", reaction="dismiss")
    assert isinstance(conflict, Refuse) and conflict.status == 409
    assert on(status="dismissed", reaction="seen") == Repeat()  # seeing is never a conflict


def test_a_withdrawn_or_expired_tip_cannot_be_answered():
    assert "replaced" in on(status="withdrawn").reason
    assert on(expires_at=NOW).reason == "this tip has expired"
    assert on(expires_at=None) == Apply("done")


def test_an_unknown_reaction_is_refused():
    assert on(reaction="later").status == 400
