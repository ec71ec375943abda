"""The reaper: ends runs whose connector stopped heartbeating, or that no connector ever picked up."""

from __future__ import annotations

from datetime import timedelta

import structlog

from services.core.ingestion import Runtime
from services.core.runs import AbortRun, RunStatus, decide
from services.core.store import runlog
from shared import topics

log = structlog.get_logger()

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


async def reap_stale_runs(
    rt: Runtime, heartbeat_timeout_s: float, queued_timeout_s: float, batch_size: int = 100
) -> int:
    now = rt.clock()
    reaped = 0
    async with rt.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            _STALE,
            timedelta(seconds=heartbeat_timeout_s),
            timedelta(seconds=queued_timeout_s),
            batch_size,
            now,
            topics.CONNECTOR_REPORTS,
        )
        for row in rows:
            state = await runlog.load_state(conn, row["id"])
            if RunStatus(row["status"]) is RunStatus.RUNNING or row["claimed"]:
                reason = (
                    f"The connector stopped reporting: no heartbeat for more than {heartbeat_timeout_s:g}s. "
                    "Trigger the integration again."
                )
            else:
                reason = f"No connector picked the run up within {queued_timeout_s:g}s. Check that a connector runs."
            events = decide(state, AbortRun(reason=reason, at=now))
            if events:
                await runlog.append(conn, row["id"], events)
                reaped += 1
                log.warning("run_reaped", run_id=str(row["id"]), reason=reason)
    return reaped
