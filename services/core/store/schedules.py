"""SQL for schedules: which integrations are due, and what each fire (or failure to evaluate) recorded."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

# SKIP LOCKED: replicas split the due rows between them; a row is fired by exactly one of them.
_DUE = """
SELECT i.id, i.external_id, i.next_fire_at
FROM integrations i
WHERE i.enabled AND i.schedule IS NOT NULL AND (i.next_fire_at IS NULL OR i.next_fire_at <= $1)
  AND (i.schedule_error_at IS NULL OR i.schedule_error_at <= $1 - $3::interval)
ORDER BY i.next_fire_at NULLS FIRST
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


async def lock_due(conn: asyncpg.Connection, now: datetime, limit: int, error_retry: timedelta) -> list[asyncpg.Record]:
    """Due schedules (id, external_id, next_fire_at), locked for this transaction; a failed one waits `error_retry`."""
    rows: list[asyncpg.Record] = await conn.fetch(_DUE, now, limit, error_retry)
    return rows


async def record_error(conn: asyncpg.Connection, integration_id: uuid.UUID, message: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE integrations SET schedule_error = $2, schedule_error_at = $3 WHERE id = $1", integration_id, message, at
    )


async def record_fire(
    conn: asyncpg.Connection, integration_id: uuid.UUID, due_at: datetime, at: datetime, outcome: str,
    run_id: uuid.UUID | None,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO schedule_fires (integration_id, due_at, fired_at, outcome, run_id) VALUES ($1, $2, $3, $4, $5)",
        integration_id, due_at, at, outcome, run_id,
    )  # fmt: skip


async def set_next_fire(conn: asyncpg.Connection, integration_id: uuid.UUID, next_fire: datetime) -> None:
    """The schedule evaluated fine: its next fire, and no error."""
    await conn.execute(
        "UPDATE integrations SET next_fire_at = $2, schedule_error = NULL, schedule_error_at = NULL WHERE id = $1",
        integration_id, next_fire,
    )  # fmt: skip
