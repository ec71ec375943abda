"""The due-check: fire every integration whose schedule is due, through the same claim as the API."""

from __future__ import annotations

import structlog

from services.core.errors import AlreadyRunning
from services.core.ingestion import Runtime, claim_run
from services.core.model import Schedule
from services.core.store import integrations as integration_store
from services.scheduler.schedule import next_fire_time

log = structlog.get_logger()

# SKIP LOCKED: replicas split the due rows between them; a row is fired by exactly one of them.
_DUE = """
SELECT i.id, i.external_id, i.next_fire_at
FROM integrations i
WHERE i.enabled AND i.schedule IS NOT NULL AND (i.next_fire_at IS NULL OR i.next_fire_at <= $1)
ORDER BY i.next_fire_at NULLS FIRST
LIMIT $2
FOR UPDATE SKIP LOCKED
"""


async def fire_due(rt: Runtime, batch_size: int = 100) -> int:
    """One due-check pass. Returns how many schedules fired (started a run or were skipped)."""
    now = rt.clock()
    fired = 0
    async with rt.pool.acquire() as conn, conn.transaction():
        for row in await conn.fetch(_DUE, now, batch_size):
            integration = await integration_store.get_by_external_id(conn, row["external_id"])
            assert integration is not None and integration.schedule is not None
            schedule: Schedule = integration.schedule
            due_at = row["next_fire_at"]
            if due_at is not None:
                fired += 1
                run_id = rt.new_id()
                try:
                    await claim_run(conn, integration, trigger="schedule", requested_by="scheduler", at=now,
                                    run_id=run_id)  # fmt: skip
                    outcome, recorded_run = "fired", run_id
                except AlreadyRunning:
                    outcome, recorded_run = "skipped_active", None
                await conn.execute(
                    "INSERT INTO schedule_fires (integration_id, due_at, fired_at, outcome, run_id) "
                    "VALUES ($1, $2, $3, $4, $5)",
                    integration.id, due_at, now, outcome, recorded_run,
                )  # fmt: skip
                log.info("schedule_fired", integration=integration.external_id, outcome=outcome)
            # Missed fires (scheduler down) collapse into one: the next fire is computed from now.
            await conn.execute(
                "UPDATE integrations SET next_fire_at = $2 WHERE id = $1", integration.id,
                next_fire_time(schedule, now),
            )  # fmt: skip
    return fired
