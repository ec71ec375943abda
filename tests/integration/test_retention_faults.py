"""Run log retention under faults: a compaction whose connection is killed mid-way (between its batches, or while it
takes the snapshot) leaves a consistent log, and a transaction that commits after the snapshot is taken is replayed
after it even though its events were numbered first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from services.core import retention
from services.core.retention import RetentionPolicy
from services.core.store import rebuild, runlog, snapshots
from shared.events import RunSucceeded
from shared.postgres import create_pool
from tests.integration.retention_support import (
    batch,
    compacted,
    crawl,
    events_of,
    outcome,
    published,
    read_models,
    start,
)
from tests.support import eventually

pytestmark = pytest.mark.integration
ONE_RUN_PER_TRANSACTION = RetentionPolicy(keep_days=0, keep_runs=1, batch_runs=1)
KEYS = [f"db/s/t{i}" for i in range(3)]
WAITS_FOR_A_LOCK = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"


async def killed_while_blocked(database: str, pool: asyncpg.Pool) -> None:
    """Compact on a connection of its own, and kill that connection once it waits for a lock the caller holds."""
    victim = await create_pool(database, min_size=1, max_size=1)
    try:
        async with victim.acquire() as conn:
            pid = conn.get_server_pid()
            work = asyncio.create_task(retention.compact(conn, ONE_RUN_PER_TRANSACTION, datetime.now(UTC)))
            await eventually(lambda: pool.fetchval(WAITS_FOR_A_LOCK, pid), interval=0.02)
            await pool.execute("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                await work
    finally:
        victim.terminate()


async def test_a_compaction_killed_between_its_batches_leaves_a_consistent_log(runtime, make_integration, database):
    older, newer = await make_integration(), await make_integration()
    done_first = await crawl(runtime, older, KEYS)
    await crawl(runtime, older, KEYS, fingerprint="f2")
    cut_short = await crawl(runtime, newer, KEYS)
    await crawl(runtime, newer, KEYS, fingerprint="f2")
    async with runtime.pool.acquire() as blocker, blocker.transaction():
        # Holds one batch of the later run: the compaction commits the earlier run, then waits here and is killed.
        await blocker.execute("SELECT 1 FROM run_events WHERE run_id = $1 AND type = 'run.lineage_reported.v1' "
                              "FOR UPDATE", cut_short.run_id)  # fmt: skip
        await killed_while_blocked(database, runtime.pool)
    async with runtime.pool.acquire() as conn:
        assert await compacted(conn, done_first, cut_short) == [True, False]
        assert all("compacted" not in (e["summary"] or {}) for e in await events_of(conn, cut_short))
        live = await read_models(conn)
        await rebuild.rebuild(conn)
        assert await read_models(conn) == live
        await retention.compact(conn, ONE_RUN_PER_TRANSACTION, datetime.now(UTC))  # resumes where it stopped
        assert await compacted(conn, cut_short) == [True]


async def test_a_compaction_killed_while_it_takes_the_snapshot_keeps_the_previous_one(
    runtime, make_integration, database
):
    integration = await make_integration()
    await crawl(runtime, integration, KEYS)
    async with runtime.pool.acquire() as conn:
        await retention.compact(conn, ONE_RUN_PER_TRANSACTION, datetime.now(UTC))
        previous = await snapshots.latest(conn)
    superseded = await crawl(runtime, integration, KEYS, fingerprint="f2")
    await crawl(runtime, integration, KEYS, fingerprint="f3")
    async with runtime.pool.acquire() as blocker, blocker.transaction():
        await blocker.execute(f"LOCK TABLE {snapshots.copy_of('assets')} IN ACCESS SHARE MODE")  # its copy is replaced
        await killed_while_blocked(database, runtime.pool)
    async with runtime.pool.acquire() as conn:
        assert await snapshots.latest(conn) == previous
        assert await compacted(conn, superseded) == [False]
        live = await read_models(conn)
        await rebuild.rebuild(conn)
        assert await read_models(conn) == live


async def test_an_append_committed_after_the_snapshot_is_replayed_though_it_was_numbered_before(
    runtime, make_integration
):
    slow, quick = await make_integration(), await make_integration()
    late = await start(runtime, slow)
    await published(runtime, late)
    async with runtime.pool.acquire() as writer:
        transaction = writer.transaction()
        await transaction.start()
        # The slow transaction's events get their positions first, and it commits only after the snapshot.
        await runlog.append(writer, late.run_id, [batch(late, KEYS), outcome(late, RunSucceeded, 3)])
        await crawl(runtime, quick, KEYS)
        async with runtime.pool.acquire() as conn:
            taken = await snapshots.take(conn, datetime.now(UTC))
        await transaction.commit()
    async with runtime.pool.acquire() as conn:
        late_positions = await conn.fetch(
            "SELECT e.position, s.stream_position FROM run_events e JOIN run_event_stream s USING (position) "
            "WHERE e.run_id = $1 AND e.seq > 2", late.run_id)  # fmt: skip
        quick_position = await conn.fetchval("SELECT max(position) FROM run_events WHERE integration_id = $1",
                                             quick.id)  # fmt: skip
        assert all(r["position"] < quick_position for r in late_positions)
        assert all(r["stream_position"] > taken.stream_position for r in late_positions)
        live = await read_models(conn)
        await rebuild.rebuild(conn)
        assert await read_models(conn) == live
    assert [a["fingerprint"] for a in live["assets"] if a["integration_id"] == slow.id] == ["f1"] * 3
