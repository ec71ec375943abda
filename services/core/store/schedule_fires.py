"""SQL for reading an integration's schedule fires (the scheduler writes them: store/schedules.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class ScheduleFire:
    id: int
    due_at: datetime
    fired_at: datetime
    outcome: str  # fired | skipped_active
    run_id: uuid.UUID | None


async def list_fires(
    conn: asyncpg.Connection, integration_id: uuid.UUID, before_id: int | None, limit: int
) -> list[ScheduleFire]:
    """Newest first, those before `before_id` (a keyset position: the index is (integration_id, id DESC))."""
    rows = await conn.fetch(
        "SELECT id, due_at, fired_at, outcome, run_id FROM schedule_fires "
        "WHERE integration_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        integration_id, before_id, limit,
    )  # fmt: skip
    return [ScheduleFire(r["id"], r["due_at"], r["fired_at"], r["outcome"], r["run_id"]) for r in rows]
