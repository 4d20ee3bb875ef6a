"""The real worker on the real broker: signals are folded, bad ones are dead-lettered."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.helpers import consume_until, http_get, produce
from topics.catalog import DEADLETTER, SIGNALS
from topics.codec import decode, encode
from topics.records import ContextObserved, DeadLettered, MoodLogged

pytestmark = pytest.mark.integration


async def test_worker_folds_signals_and_dead_letters_bad_ones_while_consuming(kafka, worker):
    user = f"u-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    key = user.encode()

    def mood(event_id: str, score: int) -> bytes:
        return encode(MoodLogged(event_id=event_id, user_id=user, occurred_at=now, source="test", score=score))

    await produce(kafka, SIGNALS["mood"].name, [
        (key, mood("m1", 1)),
        (key, mood("m1", 1)),                       # redelivered duplicate: folded once
        (key, b"{this is not json"),                # malformed bytes
        (b"someone-else", mood("m2", -1)),         # keyed by another user
        (key, json.dumps({"event_id": "m3"}).encode()),  # missing fields
        (key, mood("m4", 2)),                       # after the bad ones: still consumed
    ])
    await produce(kafka, SIGNALS["context"].name, [
        (key, encode(ContextObserved(event_id="c1", user_id=user, occurred_at=now,
                                     source="test", kind="app_opened"))),
    ])

    letters = await consume_until(
        kafka, DEADLETTER.name, lambda kept: len(kept) >= 3,
        keep=lambda r: r.key in (key, b"someone-else")
        and decode(DeadLettered, r.value).topic == SIGNALS["mood"].name
        and base64.b64decode(decode(DeadLettered, r.value).raw) in (
            b"{this is not json", mood("m2", -1), json.dumps({"event_id": "m3"}).encode()),
    )
    reasons = sorted(decode(DeadLettered, r.value).reason for r in letters)
    assert any(r.startswith("not valid JSON") for r in reasons), reasons
    assert any("keyed by user_id" in r for r in reasons), reasons
    assert any(r.startswith("occurred_at: required field is missing")
               or "required field is missing" in r for r in reasons), reasons

    changelog = f"{worker.app_id}-features-changelog"

    def final_state(kept: list) -> bool:
        if not kept:
            return False
        state = json.loads(kept[-1].value)
        return sum(state["signals_by_domain"].values()) == 3

    updates = await consume_until(kafka, changelog, final_state, keep=lambda r: r.key == key)
    state = json.loads(updates[-1].value)
    assert state["signals_by_domain"] == {"mood": 2, "context": 1}
    ids = state["recent_event_ids"]
    assert set(ids) == {"m1", "m4", "c1"} and ids.index("m1") < ids.index("m4")  # per-user order

    status, body = http_get(f"{worker.base}/metrics")
    assert status == 200
    metrics = body.decode()
    assert f'oo_dead_letters_total{{topic="{SIGNALS["mood"].name}"}}' in metrics
    assert 'oo_signals_duplicate_total{domain="mood"}' in metrics
    assert worker.process.poll() is None


async def test_worker_health_and_ready(worker):
    assert http_get(f"{worker.base}/health")[0] == 200
    status, body = http_get(f"{worker.base}/ready")
    assert status == 200
    checks = json.loads(body)["checks"]
    assert checks["kafka"]["ok"] and checks["postgres"]["ok"]
