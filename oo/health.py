"""Readiness checks shared by the web app and the worker: is Kafka, is PostgreSQL reachable?"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

CHECK_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "detail": self.detail}


async def check_kafka(bootstrap_servers: str, timeout: float = CHECK_TIMEOUT) -> Check:
    """Kafka is ready when the cluster answers a metadata request."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="oo-ready", request_timeout_ms=int(timeout * 1000)
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            cluster = await admin.describe_cluster()
        return Check("kafka", True, f"{len(cluster.get('brokers', []))} broker(s)")
    except Exception as err:  # noqa: BLE001 — any failure means "not ready": reported, not raised
        return Check("kafka", False, f"unreachable: {type(err).__name__}")
    finally:
        with contextlib.suppress(Exception):  # closing a never-started client may raise
            await admin.close()


async def check_postgres(dsn: str, timeout: float = CHECK_TIMEOUT) -> Check:
    """PostgreSQL is ready when it answers `SELECT 1`."""
    try:
        async with asyncio.timeout(timeout):
            conn = await asyncpg.connect(dsn, timeout=timeout)
            try:
                await conn.fetchval("SELECT 1")
            finally:
                await conn.close()
        return Check("postgres", True, "ok")
    except Exception as err:  # noqa: BLE001 — any failure means "not ready"
        return Check("postgres", False, f"unreachable: {type(err).__name__}")


async def check_pool(pool: asyncpg.Pool, timeout: float = CHECK_TIMEOUT) -> Check:
    """PostgreSQL is ready when a pooled connection answers `SELECT 1`."""
    try:
        async with asyncio.timeout(timeout):
            await pool.fetchval("SELECT 1")
        return Check("postgres", True, "ok")
    except Exception as err:  # noqa: BLE001 — any failure means "not ready"
        return Check("postgres", False, f"unreachable: {type(err).__name__}")


async def readiness(bootstrap_servers: str, dsn: str,
                    pool: asyncpg.Pool | None = None) -> tuple[bool, dict[str, object]]:
    """Run both checks concurrently (through `pool` when given); (all ok, JSON body)."""
    postgres_check = check_pool(pool) if pool is not None else check_postgres(dsn)
    kafka, postgres = await asyncio.gather(check_kafka(bootstrap_servers), postgres_check)
    body = {c.name: c.as_dict() for c in (kafka, postgres)}
    ok = kafka.ok and postgres.ok
    return ok, {"status": "ready" if ok else "not ready", "checks": body}
