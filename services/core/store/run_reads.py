"""Read queries over the runs read model (most recent first, served by runs_by_integration* indexes)."""

from __future__ import annotations

import uuid

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
) -> list[RunState]:
    """Newest first. Offset paging because the Entropy dialect pages by page number (`p`)."""
    rows = await conn.fetch(
        _SELECT
        + """
        WHERE r.integration_id = $1 AND ($2::text[] IS NULL OR r.status = ANY($2::text[]))
        ORDER BY r.requested_at DESC, r.id DESC LIMIT $3 OFFSET $4
        """,
        integration_id,
        [s.value for s in statuses] if statuses else None,
        limit,
        offset,
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
