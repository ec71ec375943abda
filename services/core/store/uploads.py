"""Stored uploads: written once when validated, read by the connector run that imports them, pruned after."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    integration_id: uuid.UUID
    format: str
    queued: bool
    created_at: datetime
    created_by: str | None
    created_by_name: str | None
    size_bytes: int
    seq: int | None = None  # assigned by the database when stored


async def insert(conn: asyncpg.Connection, upload: Upload, parts: Mapping[str, bytes]) -> None:
    await conn.execute(
        "INSERT INTO uploads (id, integration_id, format, queued, created_at, created_by, created_by_name, "
        "size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        upload.id, upload.integration_id, upload.format, upload.queued, upload.created_at, upload.created_by,
        upload.created_by_name, upload.size_bytes,
    )  # fmt: skip
    await conn.copy_records_to_table(
        "upload_parts", records=[(upload.id, name, content) for name, content in parts.items()],
        columns=("upload_id", "part", "content"),
    )  # fmt: skip


async def parts_of(conn: asyncpg.Connection, upload_id: uuid.UUID) -> dict[str, bytes]:
    rows = await conn.fetch("SELECT part, content FROM upload_parts WHERE upload_id = $1", upload_id)
    return {r["part"]: r["content"] for r in rows}


async def get(conn: asyncpg.Connection, upload_id: uuid.UUID) -> Upload | None:
    row = await conn.fetchrow("SELECT * FROM uploads WHERE id = $1", upload_id)
    return Upload(**dict(row)) if row else None


async def latest(conn: asyncpg.Connection, integration_id: uuid.UUID, format_: str) -> Upload | None:
    row = await conn.fetchrow(
        "SELECT * FROM uploads WHERE integration_id = $1 AND format = $2 ORDER BY seq DESC LIMIT 1",
        integration_id, format_,
    )  # fmt: skip
    return Upload(**dict(row)) if row else None


async def oldest_queued(conn: asyncpg.Connection, integration_id: uuid.UUID) -> Upload | None:
    row = await conn.fetchrow(
        "SELECT * FROM uploads WHERE integration_id = $1 AND queued ORDER BY seq LIMIT 1",
        integration_id,
    )
    return Upload(**dict(row)) if row else None


async def dequeue(conn: asyncpg.Connection, upload_id: uuid.UUID) -> None:
    await conn.execute("UPDATE uploads SET queued = false WHERE id = $1", upload_id)


async def integrations_waiting(conn: asyncpg.Connection, limit: int) -> list[uuid.UUID]:
    """Integrations with a queued upload and no active run: their next import can start now."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT u.integration_id FROM uploads u
        WHERE u.queued AND NOT EXISTS (
            SELECT 1 FROM runs r WHERE r.integration_id = u.integration_id AND r.status IN ('QUEUED', 'RUNNING'))
        LIMIT $1
        """,
        limit,
    )
    return [r["integration_id"] for r in rows]


async def prune(conn: asyncpg.Connection, integration_id: uuid.UUID) -> int:
    """Drop the uploads of an integration nobody needs any more: not queued, not being imported, and not its
    latest dbt artifacts (a trigger syncs those again). The run log keeps what the imports produced."""
    status = await conn.execute(
        """
        DELETE FROM uploads u
        WHERE u.integration_id = $1 AND NOT u.queued
          AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.upload_id = u.id AND r.status IN ('QUEUED', 'RUNNING'))
          AND u.id IS DISTINCT FROM (SELECT l.id FROM uploads l WHERE l.integration_id = $1 AND l.format = 'dbt_core'
                                     ORDER BY l.seq DESC LIMIT 1)
        """,
        integration_id,
    )
    return int(status.split()[-1])
