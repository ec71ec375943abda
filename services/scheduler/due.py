"""The due-check: fire every integration whose schedule is due, through the same claim as the API."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import structlog

from services.core.errors import AlreadyRunning
from services.core.ingestion import Runtime, SyncRequest, claim_run
from services.core.store import integrations as integration_store
from services.core.store import schedules
from shared.errors import is_retriable
from shared.metrics import SCHEDULER

log = structlog.get_logger()

# A schedule that could not be evaluated is left alone this long: it must not be retried (and fail)
# on every tick, nor sort first forever and crowd the good ones out of the batch.
ERROR_RETRY = timedelta(minutes=1)


async def fire_due(rt: Runtime, batch_size: int = 100) -> int:
    """One due-check pass. Returns how many schedules fired (started a run or were skipped).

    A row that fails (its schedule cannot be evaluated, it cannot be read) is rolled back alone, its
    error recorded on the integration, and the pass goes on with the next row."""
    now = rt.clock()
    fired = 0
    async with rt.pool.acquire() as conn, conn.transaction():
        for row in await schedules.lock_due(conn, now, batch_size, ERROR_RETRY):
            try:
                async with conn.transaction():  # a savepoint: what this row wrote goes if it fails
                    fired += await _fire_one(rt, conn, row["external_id"], row["next_fire_at"], now)
            except Exception as error:
                if is_retriable(error):
                    raise  # losing the database is not a defect of the row at hand: the pass is retried
                # A schedule that cannot be evaluated is an expected condition; anything else gets a trace.
                log.warning("schedule_not_evaluated", integration=row["external_id"], error=str(error),
                            exc_info=not isinstance(error, ValueError))  # fmt: skip
                await schedules.record_error(conn, row["id"], f"The schedule cannot be evaluated: {error}", now)
                SCHEDULER.schedule_fires.labels("error").inc()
    return fired


async def _fire_one(rt: Runtime, conn: asyncpg.Connection, external_id: str, due_at: datetime | None,
                    now: datetime) -> int:  # fmt: skip
    integration = await integration_store.get_by_external_id(conn, external_id)
    if integration is None or integration.schedule is None:
        raise ValueError("the integration's schedule cannot be read")
    # First the next fire: a schedule that cannot say when it fires next does not fire now either.
    # Missed fires (scheduler down) collapse into one: the next fire is computed from now.
    next_fire = integration.schedule.next_fire_time(now)
    fired = 0
    if due_at is not None:  # NULL: a new or edited schedule, not due before its first computed fire
        fired = 1
        run_id = rt.new_id()
        try:
            await claim_run(conn, integration, SyncRequest("schedule"), at=now, run_id=run_id, task_id=rt.new_id())
            outcome, recorded_run = "fired", run_id
        except AlreadyRunning:
            outcome, recorded_run = "skipped_active", None
        await schedules.record_fire(conn, integration.id, due_at, now, outcome, recorded_run)
        log.info("schedule_fired", integration=integration.external_id, outcome=outcome)
        SCHEDULER.schedule_fires.labels(outcome).inc()
    await schedules.set_next_fire(conn, integration.id, next_fire)
    return fired
