"""SQL for integrations: lookups scoped to what a principal may see, writes, and the connector's run context."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.core.model import Health, Integration, Principal, Schedule, Source
from services.core.runs import RunState
from services.core.store.runlog import state_from_row

_SELECT = """
SELECT i.id, i.external_id, i.name, i.source, i.enabled, i.owning_team_id, t.external_id AS team_external_id,
       i.configuration, i.schedule, i.credentials_enc IS NOT NULL AS has_credentials, i.created_at, i.updated_at,
       i.fail_safe_threshold, i.schedule_error, i.number, i.created_by, i.updated_by, i.health_ok,
       i.health_message, i.health_checked_at, ls.status AS last_sync_status, ls.completed_at AS last_sync_at,
       ls.message AS last_sync_message
FROM integrations i LEFT JOIN teams t ON t.id = i.owning_team_id
LEFT JOIN LATERAL (SELECT status, completed_at, message FROM runs
                   WHERE runs.integration_id = i.id AND runs.kind = 'sync' AND runs.status IN ('SUCCESS', 'FAILED')
                   ORDER BY requested_at DESC, id DESC LIMIT 1) ls ON true
"""

# Mirrors Principal.can_view: organization owners see everything, team keys only their teams' integrations.
_VISIBLE = "($1::boolean OR i.owning_team_id = ANY($2::uuid[]))"


def integration_from_row(row: asyncpg.Record) -> Integration:
    return Integration(
        id=row["id"],
        external_id=row["external_id"],
        name=row["name"],
        source=Source(row["source"]),
        enabled=row["enabled"],
        owning_team_id=row["owning_team_id"],
        owning_team_external_id=row["team_external_id"],
        configuration=row["configuration"],
        schedule=Schedule.from_stored(row["schedule"]) if row["schedule"] else None,
        has_credentials=row["has_credentials"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        fail_safe_threshold=row["fail_safe_threshold"],
        schedule_error=row["schedule_error"],
        number=row["number"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        health=Health(row["health_ok"], row["health_checked_at"], row["health_message"])
        if row["health_checked_at"] is not None
        else None,
        last_sync=Health(row["last_sync_status"] == "SUCCESS", row["last_sync_at"], row["last_sync_message"])
        if row["last_sync_at"] is not None
        else None,
    )


async def get_by_external_id(conn: asyncpg.Connection, external_id: str) -> Integration | None:
    row = await conn.fetchrow(_SELECT + "WHERE i.external_id = $1", external_id)
    return integration_from_row(row) if row else None


async def get_by_id(conn: asyncpg.Connection, integration_id: uuid.UUID) -> Integration | None:
    row = await conn.fetchrow(_SELECT + "WHERE i.id = $1", integration_id)
    return integration_from_row(row) if row else None


async def page_by_creation(
    conn: asyncpg.Connection, principal: Principal, source: str | None, offset: int, limit: int
) -> tuple[int, list[Integration]]:
    """(total, one page) of the visible integrations (of `source`), oldest first: a stable order for page numbers."""
    where = f"WHERE {_VISIBLE} AND ($3::text IS NULL OR i.source = $3)"
    matching = (principal.org_owner, principal.team_ids, source)
    total = await conn.fetchval(f"SELECT count(*) FROM integrations i {where}", *matching)
    rows = await conn.fetch(f"{_SELECT} {where} ORDER BY i.created_at, i.id OFFSET $4 LIMIT $5", *matching, offset,
                            limit)  # fmt: skip
    return total, [integration_from_row(r) for r in rows]


@dataclass(frozen=True)
class IntegrationFilter:
    """What a listing narrows to; None matches everything."""

    team_external_id: str | None = None
    source: str | None = None
    enabled: bool | None = None
    sources: Sequence[str] | None = None  # any of these


async def list_visible(
    conn: asyncpg.Connection,
    principal: Principal,
    where: IntegrationFilter,
    *,
    after: str | None = None,
    offset: int = 0,
    limit: int,
) -> list[tuple[Integration, RunState | None]]:
    """Visible integrations ordered by externalId, each with its most recent run.

    `after` pages by keyset (externalIds greater than it: every page is one index range scan),
    `offset` by position (the Entropy dialect's page numbers).
    """
    rows = await conn.fetch(
        f"""
        SELECT q.*, r.id AS run_id, r.integration_id AS run_integration_id, r.status, r.trigger, r.requested_at,
               r.started_at, r.completed_at, r.message, r.assets_processed, r.assets_created, r.assets_updated,
               r.assets_deleted, r.cancel_requested, r.version, r.connector_id, r.attempt, r.kind, r.task_id,
               r.scope, r.force_recursive, r.created_by AS run_created_by, r.canceled_by,
               r.updated_at AS run_updated_at, r.upload_id
        FROM ({_SELECT}
              WHERE {_VISIBLE}
                AND ($3::text IS NULL OR t.external_id = $3)
                AND ($4::text IS NULL OR i.source = $4)
                AND ($5::boolean IS NULL OR i.enabled = $5)
                AND ($6::text IS NULL OR i.external_id > $6)
                AND ($9::text[] IS NULL OR i.source = ANY($9::text[]))
              ORDER BY i.external_id OFFSET $7 LIMIT $8) q
        LEFT JOIN LATERAL (SELECT * FROM runs WHERE runs.integration_id = q.id AND runs.kind = 'sync'
                           ORDER BY requested_at DESC, id DESC LIMIT 1) r ON true
        ORDER BY q.external_id
        """,
        principal.org_owner, principal.team_ids, where.team_external_id, where.source, where.enabled,
        after, offset, limit, list(where.sources) if where.sources is not None else None,
    )  # fmt: skip
    result: list[tuple[Integration, RunState | None]] = []
    for row in rows:
        latest = None
        if row["run_id"] is not None:
            run_row = dict(row) | {"id": row["run_id"], "integration_id": row["run_integration_id"],
                                   "integration_external_id": row["external_id"], "created_by": row["run_created_by"],
                                   "updated_at": row["run_updated_at"]}  # fmt: skip
            latest = state_from_row(run_row)
        result.append((integration_from_row(row), latest))
    return result


async def record_health(conn: asyncpg.Connection, integration_id: uuid.UUID, health: Health) -> None:
    await conn.execute(
        "UPDATE integrations SET health_ok = $2, health_message = $3, health_checked_at = $4 WHERE id = $1",
        integration_id, health.ok, health.message, health.at,
    )  # fmt: skip


async def insert(conn: asyncpg.Connection, values: dict[str, Any]) -> None:
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO integrations ({columns}) VALUES ({params})", *values.values())


async def update(conn: asyncpg.Connection, integration_id: uuid.UUID, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=2))
    await conn.execute(
        f"UPDATE integrations SET {sets}, updated_at = now() WHERE id = $1", integration_id, *values.values()
    )


async def delete(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM assets WHERE integration_id = $1", integration_id)
    await conn.execute("DELETE FROM integrations WHERE id = $1", integration_id)


@dataclass(frozen=True)
class RunContext:
    """Everything a connector needs to execute a run. Credentials stay encrypted until used."""

    run: RunState
    source: Source
    configuration: dict[str, Any]
    credentials_enc: bytes | None
    fail_safe_threshold: float = 20.0
    owning_team_id: uuid.UUID | None = None  # whose other integrations its lineage may point at


async def credentials_token(conn: asyncpg.Connection, integration_id: uuid.UUID) -> bytes | None:
    """The stored credentials, still encrypted (they are decrypted only where they are used: the connector)."""
    token: bytes | None = await conn.fetchval("SELECT credentials_enc FROM integrations WHERE id = $1", integration_id)
    return token


async def lock(conn: asyncpg.Connection, integration_id: uuid.UUID) -> None:
    """Hold the integration until the transaction ends (its writers are serialised). FOR NO KEY UPDATE: it does not
    block the foreign-key checks of the projector appending the integration's run events."""
    await conn.execute("SELECT 1 FROM integrations WHERE id = $1 FOR NO KEY UPDATE", integration_id)


async def load_run_context(conn: asyncpg.Connection, run_id: uuid.UUID) -> RunContext | None:
    row = await conn.fetchrow(
        """
        SELECT r.*, i.external_id AS integration_external_id, i.source, i.configuration, i.credentials_enc,
               i.fail_safe_threshold, i.owning_team_id
        FROM runs r JOIN integrations i ON i.id = r.integration_id WHERE r.id = $1
        """,
        run_id,
    )
    if row is None:
        return None
    return RunContext(
        run=state_from_row(row),
        source=Source(row["source"]),
        configuration=row["configuration"],
        credentials_enc=row["credentials_enc"],
        fail_safe_threshold=row["fail_safe_threshold"],
        owning_team_id=row["owning_team_id"],
    )


_ORDERS = {("name", "asc"): "i.external_id ASC", ("name", "desc"): "i.external_id DESC",
           ("createdAt", "asc"): "i.created_at ASC, i.external_id ASC",
           ("createdAt", "desc"): "i.created_at DESC, i.external_id DESC"}  # fmt: skip


async def search_visible(
    conn: asyncpg.Connection, principal: Principal, sources: Sequence[str], pattern: str | None, sort: str, order: str,
    offset: int, limit: int,
) -> tuple[int, list[Integration]]:  # fmt: skip
    """(total, page) of the visible integrations of `sources` whose externalId matches an ILIKE `pattern`."""
    where = f"WHERE {_VISIBLE} AND ($3::text IS NULL OR i.external_id ILIKE $3) AND i.source = ANY($4::text[])"
    matching = (principal.org_owner, principal.team_ids, pattern, list(sources))
    total = await conn.fetchval(f"SELECT count(*) FROM integrations i {where}", *matching)
    rows = await conn.fetch(f"{_SELECT} {where} ORDER BY {_ORDERS[(sort, order)]} OFFSET $5 LIMIT $6", *matching,
                            offset, limit)  # fmt: skip
    return total, [integration_from_row(r) for r in rows]
