"""Product metrics on the web's /metrics, from PostgreSQL, agree with `oo metrics` on the same story.

A handful of people with known histories (signed up days ago, first tips
answered or not, back on day 1 or day 7 through their sessions) are written
through the real paths where there is one (sessions through web.session, tips
through the notifier's TipStore); the same story as an event log goes
through `oo metrics`' pure `compute`. The database is shared with other
tests, so the web's figures are compared as differences from before.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.tips import TipStore
from domain.candidates import Tip
from oo import metrics_report
from topics.records import TipDecided
from web import product
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration
DAY = timedelta(days=1)


async def person(pool, signed_up: datetime) -> uuid.UUID:
    return await pool.fetchval("INSERT INTO users (created_at) VALUES ($1) RETURNING id", signed_up)


async def tip(pool, user_id: uuid.UUID, at: datetime, status: str | None) -> None:
    decision_id = uuid.uuid4().hex
    await TipStore(pool).record_decision(TipDecided(
        event_id=decision_id, user_id=str(user_id), occurred_at=at, source="test",
        decision_id=decision_id, triggered_by=f"e-{decision_id}", moment="app_opened",
        policy="random", propensity=0.5, reason="test",
        tip=Tip(id=f"todo:{decision_id[:6]}", kind="todo", title="Call", body="",
                source="test"),
        context_snapshot={"moment": "app_opened"}, expires_at=at + timedelta(hours=4)))
    if status is not None:
        await pool.execute("UPDATE tip_instances SET status = $2, reacted_at = $3 "
                           "WHERE decision_id = $1", decision_id, status, at + timedelta(minutes=5))


async def come_back(client, pool, user_id: uuid.UUID) -> None:
    """A session opened earlier, used now after a while away (the once-a-minute write)."""
    session = await open_session(pool, user_id)
    await pool.execute("DELETE FROM active_days WHERE user_id = $1", user_id)  # opened earlier
    await pool.execute("UPDATE sessions SET last_seen_at = now() - interval '2 minutes' "
                       "WHERE user_id = $1", user_id)
    response = await client.get("/api/tip", headers={"Cookie": f"{COOKIE}={session.token}"})
    assert response.status == 200


async def test_the_web_reports_activation_first_tips_and_retention_like_oo_metrics(client, pool):
    now = datetime.now(UTC)
    before = await product.compute(pool)
    story: list[dict] = []  # the same people as an event log for `oo metrics`

    def signup(user_id: uuid.UUID, at: datetime) -> None:
        story.append({"type": "signup", "user_id": str(user_id), "at": int(at.timestamp())})

    def active(user_id: uuid.UUID, at: datetime) -> None:
        story.append({"type": "active", "user_id": str(user_id), "at": int(at.timestamp())})

    def tipped(user_id: uuid.UUID, at: datetime, reaction: str | None) -> None:
        d = uuid.uuid4().hex
        story.append({"type": "decided", "user_id": str(user_id), "at": int(at.timestamp()),
                      "decision_id": d})
        if reaction:
            story.append({"type": "feedback", "user_id": str(user_id), "decision_id": d,
                          "at": int((at + timedelta(minutes=5)).timestamp()),
                          "reaction": reaction, "dwell_ms": None})

    # A: 10 days ago; first tip done on day 2; back on day 7 (a session used then, now).
    a_at = now - timedelta(days=7, hours=3)
    a = await person(pool, a_at)
    await tip(pool, a, a_at + 2 * DAY, "done")
    await come_back(client, pool, a)
    signup(a, a_at), tipped(a, a_at + 2 * DAY, "done"), active(a, now)
    # B: 9 days ago; first tip dismissed, a save only on day 8 (too late to activate).
    b_at = now - timedelta(days=9)
    b = await person(pool, b_at)
    await tip(pool, b, b_at + DAY / 2, "dismissed")
    await tip(pool, b, b_at + 8 * DAY, "saved")
    signup(b, b_at), tipped(b, b_at + DAY / 2, "dismiss"), tipped(b, b_at + 8 * DAY, "save")
    # C: 1 day and 5 hours ago; first tip ignored; signs in again today (day 1).
    c_at = now - timedelta(days=1, hours=5)
    c = await person(pool, c_at)
    await tip(pool, c, c_at + timedelta(hours=2), "ignored")
    await open_session(pool, c)
    signup(c, c_at), tipped(c, c_at + timedelta(hours=2), "ignored"), active(c, now)
    # D: 3 days ago; a tip still open (not settled); never back.
    d_at = now - 3 * DAY
    d = await person(pool, d_at)
    await tip(pool, d, now - timedelta(hours=1), None)
    signup(d, d_at), tipped(d, now - timedelta(hours=1), None)

    after = await product.compute(pool)
    delta = {k: after[k] - before[k] for k in after}
    assert delta == {
        "people": 4,
        "activation_people": 2, "activated": 1,                    # A (B's save came on day 8)
        "first_tip_people": 3, "first_tip_answered": 2, "first_tip_positive": 1,  # A, B, C
        "d1_people": 3, "d1_back": 0,                              # A, B, D: none back on day 1
        "d7_people": 1, "d7_back": 0,                              # B only (A is at day 7 now)
    }, delta
    assert await pool.fetch("SELECT user_id, day FROM active_days WHERE user_id = ANY($1) "
                            "ORDER BY day", [a, c]) == [(c, 1), (a, 7)]

    # `oo metrics` on the same story, from its event log, says the same.
    cli = metrics_report.compute(story + [{"type": "active", "user_id": "clock",
                                           "at": int(now.timestamp())}])
    assert cli["activation"]["rate"] == 1 / 2 and cli["activation"]["people"] == 2
    assert cli["first_tip"]["people"] == 3
    assert cli["first_tip"]["answered_rate"] == 2 / 3
    assert cli["first_tip"]["positive_rate"] == 1 / 3
    assert cli["retention"]["d1"] == {"rate": 0.0, "people": 3}
    assert cli["retention"]["d7"] == {"rate": 0.0, "people": 1}


async def test_metrics_carries_the_product_gauges(client, pool):
    await person(pool, datetime.now(UTC) - 8 * DAY)
    text = await (await client.get("/metrics")).text()
    assert "oo_product_metrics_up 1" in text
    people = await pool.fetchval("SELECT count(*) FROM users")
    assert f"oo_product_people {people}" in text
    for metric in ("activation", "first_tip_answered", "first_tip_positive",
                   "d1_retention", "d7_retention"):
        assert f'oo_product_rate{{metric="{metric}"}} ' in text
    assert 'oo_retention_people{day="7"} ' in text
