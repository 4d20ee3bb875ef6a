"""`GET /me/export`: everything oO holds about the person, as JSON, and nothing secret.

The person is the one `test_delete_me` deletes: a session, consents, a device,
a tip with its deliveries, an ingest token, a Todoist connection.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from adapters.export import SECTIONS, WITHHELD
from tests.integration.test_api import Person
from tests.integration.test_delete_me import a_person_with_everything, client  # noqa: F401
from tests.peers.todoist import todoist  # noqa: F401 (fixture)
from web.session import COOKIE, open_session

pytestmark = pytest.mark.integration

# Tables without a user_id column whose rows belong to a person through another table.
THROUGH = {"push_deliveries": "push_deliveries", "push_withdrawals": "push_withdrawals"}
# Tables with a user_id column that hold nothing personal once used (none today).
NOT_PERSONAL: frozenset[str] = frozenset()
TABLE_OF = {"account": "users", "connectors": "credentials", "tips": "tip_instances"}


async def test_the_export_has_every_table_of_the_person_and_no_secret(
        client, pool, todoist):  # noqa: F811
    everything = await a_person_with_everything(client, pool, todoist)
    other = await a_person_with_everything(client, pool, todoist)
    try:
        await check_the_export(client, pool, everything, other)
    finally:  # their sealed tokens would stay in the shared database (test_vault counts them)
        await pool.execute("DELETE FROM users WHERE id = ANY($1)",
                           [everything.person.id, other.person.id])


async def check_the_export(client, pool, everything, other) -> None:  # noqa: F811
    person = everything.person

    response = await client.get("/me/export", headers={"Cookie": f"{COOKIE}={person.token}"})
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="oo-export-')
    text = await response.text()
    export = json.loads(text)

    # Every table that names a person (a user_id column, or users itself) has a section.
    tables = {r["table_name"] for r in await pool.fetch(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = 'user_id'")} | {"users"}
    exported = {TABLE_OF.get(name, name) for name in SECTIONS} | set(THROUGH.values())
    assert tables - NOT_PERSONAL <= exported, f"not exported: {tables - exported}"

    assert export["account"]["id"] == str(person.id)
    assert export["account"]["oidc_subject"] == everything.subject
    assert export["account"]["time_zone"] == "Europe/Paris"
    assert {c["document"] for c in export["consents"]} == {"terms", "privacy"}
    assert len(export["sessions"]) >= 1 and export["push_subscriptions"][0]["endpoint"]
    assert [t["name"] for t in export["ingest_tokens"]] == ["tracker"]
    assert [c["connector"] for c in export["connectors"]] == ["todoist"]
    [tip] = export["tips"]
    assert tip["title"] == f"Tip for {everything.subject}" and tip["reason"] == "test"
    assert tip["context_snapshot"] == {"moment": "app_opened"}  # JSON, not a string
    assert [d["decision_id"] for d in export["push_deliveries"]] == [tip["decision_id"]]
    assert set(export["withheld"]) == set(WITHHELD)

    # Nothing of the other person, and no secret: tokens, their hashes, sealed tokens.
    for trace in (str(other.person.id), other.subject):
        assert trace not in text
    sealed = await pool.fetchval("SELECT ciphertext FROM credentials WHERE user_id = $1",
                                 person.id)
    auth = await pool.fetchval("SELECT auth FROM push_subscriptions WHERE user_id = $1", person.id)
    hashes = [r["id"] for r in await pool.fetch(
        "SELECT id FROM sessions WHERE user_id = $1", person.id)]
    hashes += [r["token_hash"] for r in await pool.fetch(
        "SELECT token_hash FROM ingest_tokens WHERE user_id = $1", person.id)]
    for secret in [*everything.tokens, person.csrf, auth, *hashes, sealed.hex(),
                   hashlib.sha256(person.token.encode()).hexdigest()]:
        assert secret not in text, f"{secret[:8]}… is in the export"


async def test_the_export_needs_a_session_and_answers_for_the_caller_only(client, pool):  # noqa: F811
    assert (await client.get("/me/export")).status == 401
    user_id = await pool.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
    session = await open_session(pool, user_id)
    person = Person(user_id, session.token, session.csrf_token)
    response = await client.get("/me/export", headers={"Cookie": f"{COOKIE}={person.token}"})
    export = await response.json()
    assert response.status == 200 and export["account"]["id"] == str(user_id)
    assert export["tips"] == [] and export["format"] == "oo-export/1"
    await pool.execute("DELETE FROM users WHERE id = $1", user_id)
    assert (await client.get("/me/export",
                             headers={"Cookie": f"{COOKIE}={person.token}"})).status == 401
