"""The periodic run log compaction: a snapshot of the read models, then the batches the retention policy lets go."""

from __future__ import annotations

import asyncio
import time

import structlog

from services.core import retention
from services.core.ingestion import Runtime
from services.core.retention import RetentionPolicy
from services.core.store import snapshots

log = structlog.get_logger()

CHECK_EVERY_S = 60.0  # how often a long interval is checked against the latest snapshot


async def compact_periodically(rt: Runtime, policy: RetentionPolicy, interval_s: float) -> None:
    """Forever: compact every `interval_s`. A started process first asks the database when the latest snapshot was
    taken, so a restarted (or second) scheduler neither repeats a recent compaction nor postpones a due one. A
    failed pass (the database went away) is logged and tried again at the next check."""
    last_pass: float | None = None
    while True:
        if last_pass is None or time.monotonic() - last_pass >= interval_s:
            try:
                await _pass(rt, policy, interval_s, first=last_pass is None)
                last_pass = time.monotonic()
            except Exception as error:
                log.error("run_log_compaction_failed", error=str(error), exc_info=True)
        await asyncio.sleep(min(interval_s, CHECK_EVERY_S))


async def _pass(rt: Runtime, policy: RetentionPolicy, interval_s: float, *, first: bool) -> None:
    async with rt.pool.acquire() as conn:
        now = rt.clock()
        if first:
            latest = await snapshots.latest(conn)
            if latest is not None and (now - latest.taken_at).total_seconds() < interval_s:
                return
        if await retention.compact(conn, policy, now) is None:
            log.info("run_log_compaction_skipped", reason="another compaction or a rebuild is under way")
