"""Retention of the run log: snapshot the read models, then compact the asset and lineage batches of the runs the
policy lets go (their counts stay; every lifecycle event stays whole, for audit). Run by the scheduler periodically
and by `icp compact`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from services.core.store import compaction, snapshots
from services.core.store.compaction import Compacted
from services.core.store.snapshots import Snapshot

log = structlog.get_logger()


@dataclass(frozen=True)
class RetentionPolicy:
    """A run's batches are kept while it ended less than `keep_days` ago; a successful run's also while fewer than
    `keep_runs` successful full syncs of its integration ended after it (so the latest keeps its changes listing)."""

    keep_days: float = 30.0
    keep_runs: int = 3
    batch_runs: int = 200  # runs compacted per transaction: short transactions, resumable after an interruption


@dataclass(frozen=True)
class Compaction:
    snapshot: Snapshot
    compacted: Compacted


async def compact(conn: asyncpg.Connection, policy: RetentionPolicy, now: datetime) -> Compaction | None:
    """Take a snapshot, then compact what the policy lets go, in short transactions. None: another compaction or a
    rebuild is under way. Interrupted anywhere, the log stays consistent: every compacted batch is covered by the
    committed snapshot it was judged on (snapshots only move forward)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", snapshots.MAINTENANCE_LOCK):
        return None
    try:
        snapshot = await snapshots.take(conn, now)
        await compaction.forget_deleted_integrations(conn)
        runs = await compaction.candidates(conn, now - timedelta(days=policy.keep_days), policy.keep_runs)
        done = Compacted()
        for start in range(0, len(runs), policy.batch_runs):
            async with conn.transaction():
                done += await compaction.compact_runs(conn, runs[start : start + policy.batch_runs], snapshot, now)
    finally:
        if not conn.is_closed():  # a lost connection released it with its session
            await conn.execute("SELECT pg_advisory_unlock($1)", snapshots.MAINTENANCE_LOCK)
    log.info("run_log_compacted", snapshot_id=snapshot.id, stream_position=snapshot.stream_position,
             runs=done.runs, events=done.events, bytes_before=done.bytes_before)  # fmt: skip
    return Compaction(snapshot, done)
