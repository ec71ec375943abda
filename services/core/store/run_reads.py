"""Read queries over the runs read model (most recent first, served by runs_by_integration* indexes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.core.model import Source
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


@dataclass(frozen=True)
class IntegrationRun:
    """What a request about an integration's one run needs, read in one statement: who may see the integration,
    what it crawls, and the run (None: there is none)."""

    owning_team_id: uuid.UUID | None
    source: Source
    run: RunState | None


async def latest_sync(conn: asyncpg.Connection, external_id: str) -> IntegrationRun | None:
    """The integration's most recent sync run (None: no such integration)."""
    return await _integration_run(conn, external_id, """
        LEFT JOIN LATERAL (SELECT * FROM runs WHERE runs.integration_id = i.id AND runs.kind = 'sync'
                           ORDER BY runs.requested_at DESC, runs.id DESC LIMIT 1) r ON true""")  # fmt: skip


async def active_by_external_id(conn: asyncpg.Connection, external_id: str) -> IntegrationRun | None:
    """The integration's active run, of any kind (None: no such integration)."""
    return await _integration_run(conn, external_id, """
        LEFT JOIN runs r ON r.integration_id = i.id AND r.status IN ('QUEUED', 'RUNNING')""")  # fmt: skip


async def _integration_run(conn: asyncpg.Connection, external_id: str, join: str) -> IntegrationRun | None:
    row = await conn.fetchrow(
        f"""
        SELECT r.*, i.external_id AS integration_external_id, i.owning_team_id AS integration_team_id,
               i.source AS integration_source
        FROM integrations i {join}
        WHERE i.external_id = $1
        """,
        external_id,
    )
    if row is None:
        return None
    run = state_from_row(row) if row["id"] is not None else None
    return IntegrationRun(row["integration_team_id"], Source(row["integration_source"]), run)


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
