"""SQL for the liveness of runs: connectors' heartbeats, how far the projector has applied their reports,
and which runs went silent judged by both (what the reaper ends)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

_HEARTBEAT = """
INSERT INTO run_heartbeats (run_id, connector_id, last_at)
SELECT r.id, $2, $3 FROM runs r
WHERE r.id = $1 AND r.status = 'RUNNING' AND r.connector_id = $2 AND r.attempt = $4
ON CONFLICT (run_id) DO UPDATE SET connector_id = EXCLUDED.connector_id,
    last_at = GREATEST(run_heartbeats.last_at, EXCLUDED.last_at)
"""


async def record_heartbeats(conn: asyncpg.Connection, beats: list[tuple[uuid.UUID, str, int, datetime]]) -> int:
    """(run, connector, attempt, at): fenced like every report, only a run's owner keeps it alive."""
    if beats:
        await conn.executemany(
            _HEARTBEAT, [(run_id, connector, at, attempt) for run_id, connector, attempt, at in beats]
        )
    return len(beats)


_MARK = """
INSERT INTO projector_progress (topic, partition, caught_up_at)
SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[])
ON CONFLICT (topic, partition) DO UPDATE
    SET caught_up_at = GREATEST(projector_progress.caught_up_at, EXCLUDED.caught_up_at)
"""


async def mark_progress(pool: asyncpg.Pool, caught_up: list[tuple[str, int, datetime]]) -> None:
    """(topic, partition, time): every report of that partition acknowledged before `time` is applied."""
    if caught_up:
        await pool.execute(_MARK, *map(list, zip(*caught_up, strict=True)))


# Silence is measured up to the time every partition of the connector reports was applied by ($4, now,
# before any projector ran): a lagging or stopped projector delays heartbeats, and must not make healthy
# runs look dead. A QUEUED run that a connector claimed is executing: its silence counts like a RUNNING one.
_STALE = """
WITH ref AS (SELECT least($4::timestamptz, coalesce(
    (SELECT min(caught_up_at) FROM projector_progress WHERE topic = $5), $4)) AS at)
SELECT r.id, r.status, c.run_id IS NOT NULL AS claimed
FROM runs r LEFT JOIN run_heartbeats h ON h.run_id = r.id LEFT JOIN run_claims c ON c.run_id = r.id, ref
WHERE (r.status = 'RUNNING' AND coalesce(h.last_at, r.started_at, r.requested_at) < ref.at - $1::interval)
   OR (r.status = 'QUEUED' AND c.run_id IS NOT NULL AND coalesce(h.last_at, c.claimed_at) < ref.at - $1::interval)
   OR (r.status = 'QUEUED' AND r.requested_at < $4::timestamptz - $2::interval)
LIMIT $3
FOR UPDATE OF r SKIP LOCKED
"""


async def lock_stale_runs(
    conn: asyncpg.Connection,
    *,
    heartbeat_timeout: timedelta,
    queued_timeout: timedelta,
    now: datetime,
    reports_topic: str,
    limit: int,
) -> list[asyncpg.Record]:
    """Silent runs (id, status, claimed), locked for this transaction; other reapers skip them."""
    rows: list[asyncpg.Record] = await conn.fetch(_STALE, heartbeat_timeout, queued_timeout, limit, now, reports_topic)
    return rows
