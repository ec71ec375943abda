"""Run log retention against real Postgres: compaction keeps lifecycle events and compacts only what the policy lets
go (never an outboxed batch), rebuild from the snapshot equals the live read models, a compacted run's changes are
gone with its counts, and the scheduler compacts periodically."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.core import retention, timeline
from services.core.errors import Conflict, Gone
from services.core.retention import RetentionPolicy
from services.core.store import rebuild, snapshots
from services.scheduler.compaction import compact_periodically
from shared.events import RunFailed, RunSucceeded
from tests.integration.conftest import OWNER
from tests.integration.retention_support import (
    append,
    batch,
    compacted,
    crawl,
    events_of,
    lineage,
    outcome,
    published,
    read_models,
    start,
)
from tests.support import eventually

pytestmark = pytest.mark.integration
ALL_BUT_THE_LATEST = RetentionPolicy(keep_days=0, keep_runs=1)
KEYS = [f"db/s/t{i}" for i in range(5)]
INDEXES = "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY($1) ORDER BY 1, 2"


async def compact(runtime, policy=ALL_BUT_THE_LATEST):
    async with runtime.pool.acquire() as conn:
        done = await retention.compact(conn, policy, datetime.now(UTC))
    assert done is not None
    return done


async def test_compaction_replaces_superseded_batches_by_counts_and_keeps_every_lifecycle_event(
    runtime, make_integration
):
    integration = await make_integration()
    first = await crawl(runtime, integration, KEYS)
    failed = await crawl(runtime, integration, KEYS[:2], fingerprint="f2", ends=RunFailed)
    second = await crawl(runtime, integration, KEYS[:3], fingerprint="f3", deleted=("db/s/t4",))
    latest = await crawl(runtime, integration, KEYS[:1], fingerprint="f4")
    async with runtime.pool.acquire() as conn:
        before = {run.run_id: await events_of(conn, run) for run in (first, failed, second, latest)}
    await compact(runtime)
    async with runtime.pool.acquire() as conn:
        after = {run.run_id: await events_of(conn, run) for run in (first, failed, second, latest)}
        assert await compacted(conn, first, failed, second, latest) == [True, True, True, False]
    assert after[latest.run_id] == before[latest.run_id]  # the latest successful run keeps its batches
    for run in (first, failed, second):
        kept = [(e["seq"], e["type"], e["payload"]) for e in before[run.run_id] if e["summary"] is None]
        assert [(e["seq"], e["type"], e["payload"]) for e in after[run.run_id] if e["summary"] is None] == kept
        ended = "run.failed.v1" if run is failed else "run.succeeded.v1"
        assert [kind for _, kind, _ in kept] == ["run.requested.v1", "run.started.v1", ended]
        bulk = [(e["payload"], e["summary"]) for e in after[run.run_id] if e["summary"] is not None]
        assert len(bulk) == 2 and all(payload == summary for payload, summary in bulk)
    second_bulk = [e["payload"] for e in after[second.run_id] if e["summary"] is not None]
    assert second_bulk == [{"upserted": 3, "deleted": 1, "change": "updated", "compacted": True},
                           {"edges": 2, "compacted": True}]  # fmt: skip
    # The timeline shows a compacted batch's counts, and says it was compacted.
    events, _ = await timeline.run_timeline(runtime, OWNER, integration.external_id, second.run_id, 0, 100)
    assert [e.details for e in events if e.type == "run.assets_changed.v1"] == [second_bulk[0]]


async def test_runs_within_the_kept_days_or_runs_stay_whole(runtime, make_integration):
    integration = await make_integration()
    runs = [await crawl(runtime, integration, KEYS, fingerprint=f"f{i}") for i in range(4)]
    await compact(runtime, RetentionPolicy(keep_days=1, keep_runs=1))
    async with runtime.pool.acquire() as conn:
        assert await compacted(conn, *runs) == [False] * 4
    await compact(runtime, RetentionPolicy(keep_days=0, keep_runs=3))
    async with runtime.pool.acquire() as conn:
        assert await compacted(conn, *runs) == [True, False, False, False]


async def test_a_batch_still_in_the_outbox_keeps_its_whole_run(runtime, make_integration):
    integration = await make_integration()
    unpublished = await crawl(runtime, integration, KEYS, publish=False)
    await crawl(runtime, integration, KEYS, fingerprint="f2")
    await compact(runtime)
    async with runtime.pool.acquire() as conn:
        assert await compacted(conn, unpublished) == [False]
        assert all("compacted" not in (e["summary"] or {}) for e in await events_of(conn, unpublished))
    await published(runtime, unpublished)  # the relay got to it
    await compact(runtime)
    async with runtime.pool.acquire() as conn:
        assert await compacted(conn, unpublished) == [True]


async def test_rebuild_from_the_snapshot_and_the_events_after_it_equals_the_live_read_models(runtime, make_integration):
    one, two = await make_integration(), await make_integration()
    await crawl(runtime, one, KEYS)
    await crawl(runtime, one, KEYS[:3], fingerprint="f2", deleted=("db/s/t4",))
    await crawl(runtime, two, KEYS)
    # A run that spans the snapshot: its first batch before, the rest of it after.
    spanning = await start(runtime, two)
    await append(runtime, spanning, [batch(spanning, ["db/s/t9"], "f9")])
    await published(runtime, spanning)
    done = await compact(runtime)
    assert done.compacted.runs >= 1
    await append(runtime, spanning, [batch(spanning, KEYS[:2], "f9", deleted=("db/s/t3",)), lineage(spanning, KEYS),
                                     outcome(spanning, RunSucceeded, 3)])  # fmt: skip
    # Two runs of one integration in one batch of the replay, merged in order: t0 deleted, then reported again.
    await crawl(runtime, one, ["db/s/t4"], fingerprint="f3", deleted=("db/s/t0",))
    await crawl(runtime, one, KEYS[:2], fingerprint="f4")
    await start(runtime, one)  # still running when rebuilt
    async with runtime.pool.acquire() as conn:
        live = await read_models(conn)
        indexes = await conn.fetch(INDEXES, list(snapshots.READ_MODELS))
        replayed = await rebuild.rebuild(conn)
        rebuilt = await read_models(conn)
        position = await conn.fetchval("SELECT max(stream_position) FROM run_event_stream")
        assert await conn.fetch(INDEXES, list(snapshots.READ_MODELS)) == indexes  # dropped to restore, built again
    assert rebuilt == live
    assert [(a["asset_key"], a["fingerprint"], a["deleted_at"] is None) for a in live["assets"]
            if a["integration_id"] == one.id][:1] == [("db/s/t0", "f4", True)]  # fmt: skip
    assert replayed == position - done.snapshot.stream_position  # only the events after the snapshot
    mine = [(a["asset_key"], a["fingerprint"], a["deleted_at"] is None) for a in live["assets"]
            if a["integration_id"] == two.id]  # fmt: skip
    assert mine == [("db/s/t0", "f9", True), ("db/s/t1", "f9", True), ("db/s/t2", "f1", True),
                    ("db/s/t3", "f1", False), ("db/s/t4", "f1", True), ("db/s/t9", "f9", True)]  # fmt: skip


async def test_the_whole_log_is_replayed_only_while_nothing_was_compacted(runtime, make_integration):
    integration = await make_integration()
    await crawl(runtime, integration, KEYS)
    await crawl(runtime, integration, KEYS, fingerprint="f2")
    await compact(runtime)
    async with runtime.pool.acquire() as conn:
        with pytest.raises(Conflict, match="compacted"):
            await rebuild.rebuild(conn, from_snapshot=False)


async def test_the_changes_of_a_compacted_run_are_gone_and_its_counts_told(runtime, make_integration):
    integration = await make_integration()
    old = await crawl(runtime, integration, KEYS)
    new = await crawl(runtime, integration, KEYS[:2], fingerprint="f2")
    await compact(runtime)
    with pytest.raises(Gone) as gone:
        await timeline.run_changes(runtime, OWNER, integration.external_id, old.run_id, (0, 0, 0), 100)
    assert "compacted" in gone.value.detail
    async with runtime.pool.acquire() as conn:
        counts = await conn.fetchrow("SELECT assets_created, assets_updated, assets_deleted FROM runs WHERE id = $1",
                                     old.run_id)  # fmt: skip
    c, u, d = counts
    assert f"{c} created, {u} updated, {d} deleted" in gone.value.detail
    changes, more = await timeline.run_changes(runtime, OWNER, integration.external_id, new.run_id, (0, 0, 0), 100)
    assert [change.key for change in changes] == KEYS[:2] and not more


async def test_the_scheduler_compacts_the_log_periodically(runtime, make_integration):
    integration = await make_integration()
    superseded = await crawl(runtime, integration, KEYS)
    await crawl(runtime, integration, KEYS, fingerprint="f2")
    job = asyncio.create_task(compact_periodically(runtime, ALL_BUT_THE_LATEST, interval_s=0.2))
    try:
        async with runtime.pool.acquire() as conn:

            async def superseded_compacted() -> bool:
                return await compacted(conn, superseded) == [True]

            async def newer_snapshot() -> bool:
                latest = await snapshots.latest(conn)
                return latest is not None and latest.id != first.id

            await eventually(superseded_compacted)
            first = await snapshots.latest(conn)
            # ... and again: each pass takes a new snapshot once events were appended since the last one.
            await crawl(runtime, integration, KEYS, fingerprint="f3")
            await eventually(newer_snapshot)
    finally:
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job


async def test_a_compacted_run_that_reported_no_batch_still_lists_its_changes_as_none(runtime, make_integration):
    integration = await make_integration()
    quiet = await start(runtime, integration)
    await append(runtime, quiet, [outcome(quiet, RunSucceeded, 0)])
    await published(runtime, quiet)
    await crawl(runtime, integration, KEYS)
    await compact(runtime)
    async with runtime.pool.acquire() as conn:
        assert await compacted(conn, quiet) == [True]  # nothing to compact: not looked at again
    changes, more = await timeline.run_changes(runtime, OWNER, integration.external_id, quiet.run_id, (0, 0, 0), 100)
    assert (changes, more) == ([], False)  # nothing was dropped: the empty list is still the truth
