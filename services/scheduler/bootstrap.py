"""Wires the scheduler process: one loop running the due-check, queued imports and the reaper every tick."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog

from services.core.ingestion import Runtime
from services.core.uploads import start_waiting_imports
from services.scheduler.due import fire_due
from services.scheduler.reaper import reap_stale_runs
from services.scheduler.settings import SchedulerSettings
from shared.postgres import create_pool

log = structlog.get_logger()

Step = tuple[str, Callable[[], Awaitable[object]]]


async def run_steps(steps: Sequence[Step]) -> None:
    """Run every step even when an earlier one failed: a due-check that fails must not stop the reaper
    (runs of a dead connector would stay RUNNING and their integrations answer 409 forever)."""
    for name, step in steps:
        try:
            await step()
        except Exception as error:
            log.error("scheduler_step_failed", step=name, error=str(error), exc_info=True)


async def tick(rt: Runtime, settings: SchedulerSettings) -> None:
    await run_steps([
        ("due_check", lambda: fire_due(rt)),
        ("imports", lambda: start_waiting_imports(rt)),  # queued uploads whose integration became free
        ("reaper", lambda: reap_stale_runs(rt, settings.heartbeat_timeout_s, settings.queued_timeout_s)),
    ])  # fmt: skip


async def run_scheduler(settings: SchedulerSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=3)
    rt = Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4)
    log.info("scheduler_started", tick_s=settings.tick_interval_s, heartbeat_timeout_s=settings.heartbeat_timeout_s)
    try:
        while True:
            await tick(rt, settings)
            await asyncio.sleep(settings.tick_interval_s)
    finally:
        await pool.close()
