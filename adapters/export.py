"""Everything oO holds about one person, as JSON (`GET /me/export`).

One section per PostgreSQL table that holds rows of theirs, read in one
repeatable-read transaction so the sections agree with each other. Secrets
are named in `withheld`, never exported: hashes of their session, CSRF and
ingest tokens (useless to them, and a copy must not be replayable), the
sealed connector tokens, and the push subscription's auth secret.

What is not in PostgreSQL: the engine's feature state (a Faust table, see
docs/identity.md) is exported as the engine saw it at each decision — every
tip carries its `context_snapshot` — not read live from the worker; and the
signals already on the Kafka topics expire with the topics' retention.
`tests/integration/test_export.py` fails when a table with a `user_id` is
missing here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

FORMAT = "oo-export/1"

# section name -> query with $1 = the person's id. Column lists are explicit:
# a column added later is not exported until someone decides it should be.
SECTIONS: Mapping[str, str] = {
    "account": """
        SELECT id, created_at, time_zone, preferences, oidc_issuer, oidc_subject, display_name
        FROM users WHERE id = $1""",
    "consents": """
        SELECT document, version_hash, accepted_at FROM consents
        WHERE user_id = $1 ORDER BY accepted_at, document""",
    "sessions": """
        SELECT created_at, expires_at, last_seen_at, user_agent FROM sessions
        WHERE user_id = $1 ORDER BY created_at""",
    "active_days": """
        SELECT day FROM active_days WHERE user_id = $1 ORDER BY day""",
    "connectors": """
        SELECT connector, scopes, cursor, key_id, created_at, updated_at FROM credentials
        WHERE user_id = $1 ORDER BY connector""",
    "connector_attempts": """
        SELECT connector, created_at, expires_at FROM connector_attempts
        WHERE user_id = $1 ORDER BY created_at""",
    "push_subscriptions": """
        SELECT id, endpoint, p256dh, user_agent, created_at, last_success_at, failure_count
        FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at""",
    "tips": """
        SELECT decision_id, tip_id, kind, title, body, source, deep_link, meta, moment, policy,
               propensity, reason, triggered_by, context_snapshot, decided_at, created_at,
               status, expires_at, reacted_at, snooze_until, withdrawn_by
        FROM tip_instances WHERE user_id = $1 ORDER BY decided_at, decision_id""",
    "push_deliveries": """
        SELECT d.decision_id, d.subscription_id, d.status, d.attempts, d.last_error, d.updated_at
        FROM push_deliveries d JOIN tip_instances t USING (decision_id)
        WHERE t.user_id = $1 ORDER BY d.updated_at, d.decision_id""",
    "push_withdrawals": """
        SELECT w.decision_id, w.subscription_id, w.withdrawn_by, w.status, w.attempts,
               w.last_error, w.updated_at
        FROM push_withdrawals w JOIN tip_instances t USING (decision_id)
        WHERE t.user_id = $1 ORDER BY w.updated_at, w.decision_id""",
    "ingest_tokens": """
        SELECT id, name, domains, created_at, last_used_at, revoked_at, expires_at
        FROM ingest_tokens
        WHERE user_id = $1 ORDER BY created_at""",
    "ingested_events": """
        SELECT event_id, accepted_at FROM ingested_events
        WHERE user_id = $1 ORDER BY accepted_at, event_id""",
    # Events of theirs written but not yet published to Kafka (normally none for long).
    "outbox": """
        SELECT topic, payload, created_at FROM outbox
        WHERE key = $1 AND published_at IS NULL ORDER BY id""",
}

WITHHELD = {
    "sessions": "the hashes of the session and CSRF tokens (your browser holds the tokens)",
    "connectors": "the sealed access tokens (encrypted; only the connected service can use them)",
    "push_subscriptions": "the subscription's auth secret (your browser holds it)",
    "ingest_tokens": "the token hashes (the tokens were shown to you once)",
}

NOT_HERE = {
    "engine_state": "the engine's per-person features (open todos, habits, calendar, mood, "
                    "answers by hour) as seen at each decision: tips[].context_snapshot",
    "signals": "signals you sent are on the event topics until their retention ends; they are "
               "not kept in PostgreSQL",
}

JSON_COLUMNS = frozenset({"preferences", "meta", "context_snapshot", "payload"})


def _value(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if column in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return value


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {column: _value(column, value) for column, value in record.items()}


async def export_person(pool: asyncpg.Pool, user_id: uuid.UUID,
                        now: datetime) -> dict[str, Any] | None:
    """Every section for `user_id`, or None when there is no such person."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                          readonly=True):
        account = await conn.fetchrow(SECTIONS["account"], user_id)
        if account is None:
            return None
        result: dict[str, Any] = {"format": FORMAT, "exported_at": now.astimezone(UTC).isoformat(),
                                  "account": _row(account)}
        for name, query in SECTIONS.items():
            if name != "account":
                key = str(user_id) if name == "outbox" else user_id  # outbox.key is text
                result[name] = [_row(r) for r in await conn.fetch(query, key)]
    result["withheld"] = WITHHELD
    result["not_in_this_export"] = NOT_HERE
    return result
