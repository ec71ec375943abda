"""SQL of the system status: recorded process readiness (written by shared/ops.py), the oldest queued run,
dead-letter counts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

# A process that missed this many of its own periods has stopped (or cannot reach the database).
STALE_AFTER_PERIODS = 3

# Staleness is judged by the database's clock only: the writers' and the reader's clocks may differ.
_PROCESSES = f"""
SELECT service, instance, ready, checks, seen_at,
       seen_at < now() - make_interval(secs => interval_s * {STALE_AFTER_PERIODS}) AS stale
FROM process_status ORDER BY service, instance
"""

_OLDEST_QUEUED = """
SELECT r.id, i.external_id, r.requested_at
FROM runs r JOIN integrations i ON i.id = r.integration_id
WHERE r.status = 'QUEUED' ORDER BY r.requested_at LIMIT 1
"""

_DEAD_LETTERS = """
SELECT (SELECT count(*) FROM report_dead_letters) AS reports, (SELECT count(*) FROM outbox_dead_letters) AS outbox
"""


@dataclass(frozen=True)
class ProcessRow:
    service: str
    instance: str
    ready: bool
    stale: bool
    checks: dict[str, Any]
    seen_at: datetime


@dataclass(frozen=True)
class QueuedRun:
    run_id: uuid.UUID
    integration_external_id: str
    requested_at: datetime


async def processes(conn: asyncpg.Connection) -> list[ProcessRow]:
    return [
        ProcessRow(r["service"], r["instance"], r["ready"], r["stale"], r["checks"], r["seen_at"])
        for r in await conn.fetch(_PROCESSES)
    ]


async def oldest_queued_run(conn: asyncpg.Connection) -> QueuedRun | None:
    row = await conn.fetchrow(_OLDEST_QUEUED)
    return None if row is None else QueuedRun(row["id"], row["external_id"], row["requested_at"])


async def dead_letter_counts(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(_DEAD_LETTERS)
    assert row is not None
    return int(row["reports"]), int(row["outbox"])
