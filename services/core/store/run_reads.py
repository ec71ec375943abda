"""Read queries over the runs read model (most recent first, served by runs_by_integration* indexes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.core.runs import RunState, RunStatus
from services.core.store.runlog import state_from_row

_SELECT = """
SELECT r.*, i.external_id AS integration_external_id
FROM runs r JOIN integrations i ON i.id = r.integration_id
"""


async def list_runs(
    conn: asyncpg.Connection,
    integration_id: uuid.UUID,
    statuses: list[RunStatus] | None,
    limit: int,
    offset: int = 0,
    *,
    kind: str,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[RunState]:
    """Newest first, from `offset` (the Entropy dialect's page numbers) or after a keyset position."""
    rows = await conn.fetch(
        _SELECT
        + """
        WHERE r.integration_id = $1 AND r.kind = $5 AND ($2::text[] IS NULL OR r.status = ANY($2::text[]))
          AND ($6::timestamptz IS NULL OR (r.requested_at, r.id) < ($6::timestamptz, $7::uuid))
        ORDER BY r.requested_at DESC, r.id DESC LIMIT $3 OFFSET $4
        """,
        integration_id,
        [s.value for s in statuses] if statuses else None,
        limit,
        offset,
        kind,
        after[0] if after else None,
        after[1] if after else None,
    )
    return [state_from_row(r) for r in rows]


async def get_run(conn: asyncpg.Connection, run_id: uuid.UUID) -> RunState | None:
    row = await conn.fetchrow(_SELECT + "WHERE r.id = $1", run_id)
    return state_from_row(row) if row else None


async def active_run(conn: asyncpg.Connection, integration_id: uuid.UUID) -> RunState | None:
    row = await conn.fetchrow(
        _SELECT + "WHERE r.integration_id = $1 AND r.status IN ('QUEUED', 'RUNNING')", integration_id
    )
    return state_from_row(row) if row else None


@dataclass(frozen=True)
class TaskFilter:
    """Runs seen as tasks; None matches everything. `created_by` is a principal id, matching the runs that key
    requested itself (trigger manual); "system" matches the others (scheduled, or caused by registration,
    a connection update or a settings change)."""

    kinds: list[str] | None = None
    statuses: list[RunStatus] | None = None
    triggers: list[str] | None = None
    created_by: str | None = None


async def tasks_after(
    conn: asyncpg.Connection, integration_id: uuid.UUID, where: TaskFilter,
    after: tuple[datetime, uuid.UUID] | None, limit: int,
) -> list[RunState]:  # fmt: skip
    """Runs of every kind, newest first then by id, after a keyset position."""
    system = where.created_by == "system"
    rows = await conn.fetch(
        _SELECT
        + """
        WHERE r.integration_id = $1 AND ($2::text[] IS NULL OR r.kind = ANY($2::text[]))
          AND ($3::text[] IS NULL OR r.status = ANY($3::text[])) AND ($4::text[] IS NULL OR r.trigger = ANY($4::text[]))
          AND ($5::text IS NULL OR (r.trigger = 'manual' AND r.created_by = $5))
          AND (NOT $6 OR r.trigger <> 'manual' OR r.created_by IS NULL)
          AND ($7::timestamptz IS NULL OR (r.requested_at, r.id) < ($7::timestamptz, $8::uuid))
        ORDER BY r.requested_at DESC, r.id DESC LIMIT $9
        """,
        integration_id, where.kinds, [s.value for s in where.statuses] if where.statuses is not None else None,
        where.triggers, None if system else where.created_by, system, after[0] if after else None,
        after[1] if after else None, limit,
    )  # fmt: skip
    return [state_from_row(r) for r in rows]


async def get_by_task(conn: asyncpg.Connection, integration_id: uuid.UUID, task_id: uuid.UUID) -> RunState | None:
    row = await conn.fetchrow(_SELECT + "WHERE r.task_id = $1 AND r.integration_id = $2", task_id, integration_id)
    return state_from_row(row) if row else None
