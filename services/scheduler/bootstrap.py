"""Wires the scheduler process: one loop running the due-check, queued imports and the reaper every tick, and the
run log's periodic compaction beside it (a long compaction must not hold up the ticks)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import structlog

from services.core.ingestion import Runtime
from services.core.store import gauges
from services.core.uploads import start_waiting_imports
from services.scheduler.compaction import compact_periodically
from services.scheduler.due import fire_due
from services.scheduler.reaper import reap_stale_runs
from services.scheduler.settings import SchedulerSettings
from shared import ops
from shared.metrics import SCHEDULER
from shared.postgres import create_pool
from shared.process import Supervisor

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


class TickClock:
    """When the loop last finished a tick: a loop stuck in a step (a hung query) is not ready. Not a
    liveness criterion: a database outage slows ticks down, and restarting the process would not help."""

    def __init__(self, tick_interval_s: float) -> None:
        # A tick may wait out a slow database; only many missed ticks mean a stuck loop.
        self.max_silence_s = max(30.0, 10 * tick_interval_s)
        self.last = time.monotonic()

    async def ticking(self) -> str | None:
        silent = time.monotonic() - self.last
        return f"no tick finished for {silent:.0f}s" if silent > self.max_silence_s else None


def scheduler_ops(pool: asyncpg.Pool, clock: TickClock) -> ops.Ops:
    async def refresh() -> None:
        async with pool.acquire() as conn:
            rows = await gauges.runs_by_status(conn)
        SCHEDULER.runs.clear()
        for status, source, trigger, runs in rows:
            SCHEDULER.runs.labels(status, source, trigger).set(runs)

    checks = {"database": ops.database_reachable(pool), "loop": clock.ticking}
    return ops.Ops(SCHEDULER.registry, checks, refresh)


async def run_scheduler(settings: SchedulerSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=5)  # one for scrapes and checks, one for compaction
    rt = Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4)
    clock = TickClock(settings.tick_interval_s)
    log.info("scheduler_started", tick_s=settings.tick_interval_s, heartbeat_timeout_s=settings.heartbeat_timeout_s)
    try:
        async with (
            ops.serving(settings.ops_host, settings.ops_port, scheduler_ops(pool, clock), "scheduler", pool),
            Supervisor() as supervisor,
        ):
            if settings.compact_interval_s > 0:
                work = compact_periodically(rt, settings.retention_policy(), settings.compact_interval_s)
                supervisor.start("run_log_compaction", work)
            while True:
                await tick(rt, settings)
                clock.last = time.monotonic()
                await asyncio.sleep(settings.tick_interval_s)
    finally:
        await pool.close()
