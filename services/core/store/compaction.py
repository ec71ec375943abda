"""Compaction of the run log: the asset and lineage batches of runs the retention policy lets go are replaced by
their counts. Which runs is judged on the latest snapshot's copy of `runs`, so only runs whose whole life is in the
snapshot qualify: the snapshot holds the effects of their batches, and rebuild never reads them again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.core.runs import TERMINAL_STATUSES, RunStatus
from services.core.store.snapshots import Snapshot, copy_of

BULK_TYPES = ["run.assets_changed.v1", "run.lineage_reported.v1"]

# A successful run stays whole while fewer than $3 successful full syncs (of the whole connection) of its integration
# ended after it: the newest keeps its changes listing. Other runs' batches never reached the catalog; no reader lists
# them, so only their age keeps them. Oldest first, so an interrupted compaction resumes where it stopped.
_CANDIDATES = f"""
WITH ranked AS (
    SELECT r.id, r.integration_id, r.status, r.completed_at,
           count(*) FILTER (WHERE r.status = $4 AND r.kind = 'sync' AND r.scope IS NULL) OVER (
               PARTITION BY r.integration_id ORDER BY r.completed_at DESC NULLS FIRST, r.id DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS later_full_syncs
    FROM {copy_of("runs")} r
)
SELECT k.id, k.integration_id FROM ranked k
WHERE k.status = ANY($1::text[]) AND k.completed_at < $2 AND (k.status <> $4 OR k.later_full_syncs >= $3)
  AND NOT EXISTS (SELECT 1 FROM run_log_compacted_runs c WHERE c.run_id = k.id)
  AND EXISTS (SELECT 1 FROM integrations i WHERE i.id = k.integration_id)
ORDER BY k.completed_at, k.id
"""

# All of a run's batches in one statement, or none of them: a batch an unpublished (or dead-lettered) outbox row still
# renders from the log keeps its whole run for a later pass. Stream positions above the snapshot's are never touched.
_COMPACT = """
WITH batch AS (
    SELECT e.position, e.run_id, pg_column_size(e.payload) AS bytes
    FROM run_events e JOIN run_event_stream s ON s.position = e.position
    WHERE e.run_id = ANY($1::uuid[]) AND e.type = ANY($3::text[]) AND NOT e.summary ? 'compacted'
      AND s.stream_position <= $4
), held AS (
    SELECT DISTINCT b.run_id FROM batch b
    WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.run_event_position = b.position)
       OR EXISTS (SELECT 1 FROM outbox_dead_letters d WHERE d.run_event_position = b.position)
), compacted AS (
    UPDATE run_events e SET payload = e.summary || '{"compacted": true}'::jsonb
    FROM batch b
    WHERE e.position = b.position AND b.run_id NOT IN (SELECT run_id FROM held)
    RETURNING e.run_id, b.bytes
)
INSERT INTO run_log_compacted_runs (run_id, integration_id, snapshot_id, compacted_at, events, bytes_before)
SELECT r.id, r.integration_id, $5, $6, count(c.run_id), coalesce(sum(c.bytes), 0)
FROM unnest($1::uuid[], $2::uuid[]) AS r(id, integration_id)
LEFT JOIN compacted c ON c.run_id = r.id
WHERE r.id NOT IN (SELECT run_id FROM held)
GROUP BY r.id, r.integration_id
RETURNING events, bytes_before
"""


@dataclass(frozen=True)
class Compacted:
    runs: int = 0
    events: int = 0
    bytes_before: int = 0

    def __add__(self, other: Compacted) -> Compacted:
        return Compacted(self.runs + other.runs, self.events + other.events, self.bytes_before + other.bytes_before)


async def candidates(
    conn: asyncpg.Connection, ended_before: datetime, keep_runs: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(run id, integration id) of the snapshot's runs the policy lets go and that are not compacted yet."""
    terminal = [s.value for s in TERMINAL_STATUSES]
    rows = await conn.fetch(_CANDIDATES, terminal, ended_before, keep_runs, RunStatus.SUCCESS.value)
    return [(r["id"], r["integration_id"]) for r in rows]


async def compact_runs(
    conn: asyncpg.Connection, runs: list[tuple[uuid.UUID, uuid.UUID]], snapshot: Snapshot, at: datetime
) -> Compacted:
    """Compact these runs' batches (one transaction: call inside one). Runs with a batch still in the outbox are
    left for a later pass."""
    rows = await conn.fetch(
        _COMPACT, [r for r, _ in runs], [i for _, i in runs], BULK_TYPES, snapshot.stream_position, snapshot.id, at
    )
    return Compacted(len(rows), sum(r["events"] for r in rows), sum(r["bytes_before"] for r in rows))


async def forget_deleted_integrations(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "DELETE FROM run_log_compacted_runs c "
        "WHERE NOT EXISTS (SELECT 1 FROM integrations i WHERE i.id = c.integration_id)"
    )


async def compaction_of(conn: asyncpg.Connection, run_id: uuid.UUID) -> datetime | None:
    """When the run's batches were compacted; None: they are whole (or it had none: nothing was lost)."""
    at: datetime | None = await conn.fetchval(
        "SELECT compacted_at FROM run_log_compacted_runs WHERE run_id = $1 AND events > 0", run_id
    )
    return at
