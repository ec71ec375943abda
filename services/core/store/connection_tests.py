"""SQL for connection tests: requested by the API, answered by a connector (NOTIFY wakes the API)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

NOTIFY_CHANNEL = "connection_tests"


async def insert_pending(
    conn: asyncpg.Connection, test_id: uuid.UUID, integration_id: uuid.UUID | None, requested_by: str, at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO connection_tests (id, integration_id, requested_by, requested_at) VALUES ($1, $2, $3, $4)",
        test_id, integration_id, requested_by, at,
    )  # fmt: skip


async def record_result(
    conn: asyncpg.Connection, test_id: uuid.UUID, *, passed: bool, message: str, duration_ms: int,
    connector_id: str, at: datetime,
) -> None:  # fmt: skip
    """Record the answer (first one wins: a redelivered request answered twice changes nothing) and wake the API."""
    await conn.execute(
        "UPDATE connection_tests SET status = $2, message = $3, duration_ms = $4, connector_id = $5, finished_at = $6 "
        "WHERE id = $1 AND status = 'PENDING'",
        test_id, "PASSED" if passed else "FAILED", message, duration_ms, connector_id, at,
    )  # fmt: skip
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, str(test_id))


async def get(conn: asyncpg.Connection, test_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, status, message, duration_ms, requested_at, finished_at FROM connection_tests WHERE id = $1",
        test_id,
    )
    return row
