"""The reaper: ends runs whose connector stopped heartbeating, or that no connector ever picked up."""

from __future__ import annotations

from datetime import timedelta

import structlog

from services.core.ingestion import Runtime
from services.core.runs import AbortRun, RunStatus, decide
from services.core.store import liveness, runlog
from shared import topics
from shared.metrics import SCHEDULER

log = structlog.get_logger()


async def reap_stale_runs(
    rt: Runtime, heartbeat_timeout_s: float, queued_timeout_s: float, batch_size: int = 100
) -> int:
    now = rt.clock()
    reaped = 0
    async with rt.pool.acquire() as conn, conn.transaction():
        rows = await liveness.lock_stale_runs(
            conn, heartbeat_timeout=timedelta(seconds=heartbeat_timeout_s),
            queued_timeout=timedelta(seconds=queued_timeout_s), now=now, reports_topic=topics.CONNECTOR_REPORTS,
            limit=batch_size,
        )  # fmt: skip
        for row in rows:
            state = await runlog.load_state(conn, row["id"])
            if RunStatus(row["status"]) is RunStatus.RUNNING or row["claimed"]:
                retry = state.how_to_retry if state else "Trigger the integration again."
                reason = (
                    f"The connector stopped reporting: no heartbeat for more than {heartbeat_timeout_s:g}s. {retry}"
                )
            else:
                reason = f"No connector picked the run up within {queued_timeout_s:g}s. Check that a connector runs."
            events = decide(state, AbortRun(reason=reason, at=now, reaped=True))
            if events:
                await runlog.append(conn, row["id"], events)
                reaped += 1
                log.warning("run_reaped", run_id=str(row["id"]), reason=reason)
    SCHEDULER.runs_reaped.inc(reaped)  # after the commit: a rolled-back pass reaped nothing
    return reaped
