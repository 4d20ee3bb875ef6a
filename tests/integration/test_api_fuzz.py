"""Fuzz the HTTP API from its OpenAPI file with schemathesis, against `oo web` on the real services.

Every documented operation gets generated valid and invalid requests (as a
signed-in person, with the CSRF token and an ingest token): 0 server errors,
and every response matches the documented status codes, content types and
schemas; invalid data is refused with a 4xx.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from adapters.ingest import IngestStore
from tests.conftest import oo_test_environ
from tests.helpers import ROOT, oo_process, stop_process, wait_http
from tests.integration.conftest import ARTIFACTS
from topics.admin import ensure_topics
from web.session import open_session

pytestmark = pytest.mark.integration
SPEC = ROOT / "web" / "static" / "openapi.yaml"


@pytest.fixture
def web_process(settings, kafka, postgres, tmp_path):
    asyncio.run(ensure_topics(kafka, partitions=settings.topic_partitions,
                              replication=settings.topic_replication, log=lambda _: None))
    log = ARTIFACTS / "web-fuzz.log"
    env = {**oo_test_environ(), "OO_VAPID_PRIVATE_KEY": str(tmp_path / "vapid.pem")}
    process = oo_process(["web"], env, log)
    base = f"http://127.0.0.1:{settings.web_port}"
    try:
        wait_http(f"{base}/health", process=process, log=log)
        yield base
    finally:
        stop_process(process)


async def _person(dsn: str) -> tuple[uuid.UUID, str, str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await conn.fetchval("INSERT INTO users DEFAULT VALUES RETURNING id")
        session = await open_session(conn, user_id)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        _, token = await IngestStore(pool).create_token(user_id, "fuzz", ["habits", "mood"])
    finally:
        await pool.close()
    return user_id, session.token, session.csrf_token, token


def test_the_api_never_fails_and_always_answers_as_documented(web_process, postgres, tmp_path):
    user_id, token, csrf, ingest = asyncio.run(_person(postgres))
    report = ARTIFACTS / "schemathesis"
    shutil.rmtree(report, ignore_errors=True)
    # Credentials through the document's own security schemes, so negative tests that
    # leave one out expect (and get) a 401/403 rather than being overridden by a header.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'[auth.openapi.session]\napi_key = "{token}"\n'
        f'[auth.openapi.csrf]\napi_key = "{csrf}"\n'
        f'[auth.openapi.ingest_token]\nbearer = "{ingest}"\n')
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
        "run", str(SPEC), "--url", web_process,
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance,negative_data_rejection",
        # The event stream never ends; deleting the fuzzing person would end the run.
        "--exclude-path", "/api/events", "--exclude-name", "DELETE /api/me",
        "--max-examples", "40", "--seed", "20261201", "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--request-timeout", "10",
        "--report", "junit", "--report-dir", str(report),
    ]
    done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=600,
                          env={**oo_test_environ(), "NO_COLOR": "1"})
    (ARTIFACTS / "schemathesis.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    asyncio.run(_forget(postgres, user_id))


async def _forget(dsn: str, user_id: uuid.UUID) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM users WHERE id = $1", user_id)
    finally:
        await conn.close()
