"""Wires the scheduler process: one loop running the due-check and the reaper every tick."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import structlog

from services.core.ingestion import Runtime
from services.scheduler.due import fire_due
from services.scheduler.reaper import reap_stale_runs
from services.scheduler.settings import SchedulerSettings
from shared.postgres import create_pool

log = structlog.get_logger()


async def run_scheduler(settings: SchedulerSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=3)
    rt = Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4)
    log.info("scheduler_started", tick_s=settings.tick_interval_s, heartbeat_timeout_s=settings.heartbeat_timeout_s)
    try:
        while True:
            try:
                await fire_due(rt)
                await reap_stale_runs(rt, settings.heartbeat_timeout_s, settings.queued_timeout_s)
            except (asyncpg.PostgresError, OSError) as error:
                log.warning("scheduler_tick_failed", error=str(error))
            await asyncio.sleep(settings.tick_interval_s)
    finally:
        await pool.close()
