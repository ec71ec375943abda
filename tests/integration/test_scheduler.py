"""Scheduler and reaper against real Postgres: replicas never double-fire; silent runs end."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.core import ingestion
from services.core.ingestion import Runtime
from services.core.runs import RunStatus
from services.core.store import run_reads
from services.scheduler.due import fire_due
from services.scheduler.reaper import reap_stale_runs
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration


async def test_two_scheduler_replicas_fire_a_due_schedule_exactly_once(runtime, make_integration, pool):
    integration = await make_integration(schedule={"intervalSeconds": 3600})
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET next_fire_at = now() - interval '1 minute' WHERE id = $1",
                           integration.id)  # fmt: skip
    replicas = [Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4) for _ in range(4)]
    await asyncio.gather(*(fire_due(replica) for replica in replicas))
    async with pool.acquire() as conn:
        fires = await conn.fetch("SELECT outcome FROM schedule_fires WHERE integration_id = $1", integration.id)
        runs = await conn.fetchval("SELECT count(*) FROM runs WHERE integration_id = $1", integration.id)
        next_fire = await conn.fetchval("SELECT next_fire_at FROM integrations WHERE id = $1", integration.id)
    assert [f["outcome"] for f in fires] == ["fired"] and runs == 1
    assert next_fire > datetime.now(UTC) + timedelta(minutes=59)


async def test_a_disabled_schedule_does_not_fire(runtime, make_integration, pool):
    integration = await make_integration(schedule={"intervalSeconds": 60}, enabled=False)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET next_fire_at = now() - interval '1 minute' WHERE id = $1",
                           integration.id)  # fmt: skip
    await fire_due(runtime)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM runs WHERE integration_id = $1", integration.id) == 0


async def test_reaper_fails_a_running_run_without_heartbeat_and_leaves_fresh_ones(runtime, make_integration, pool):
    silent = await make_integration()
    alive = await make_integration()
    silent_run = await ingestion.trigger_run(runtime, OWNER, silent.external_id)
    alive_run = await ingestion.trigger_run(runtime, OWNER, alive.external_id)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE runs SET status = 'RUNNING', started_at = now() WHERE id = ANY($1::uuid[])",
                           [silent_run.run_id, alive_run.run_id])  # fmt: skip
        await conn.execute("INSERT INTO run_heartbeats VALUES ($1, 'c', now() - interval '1 minute'), ($2, 'c', now())",
                           silent_run.run_id, alive_run.run_id)  # fmt: skip
    later = Runtime(pool=pool, clock=lambda: datetime.now(UTC) + timedelta(seconds=5), new_id=uuid.uuid4)
    await reap_stale_runs(later, heartbeat_timeout_s=30, queued_timeout_s=600)
    async with pool.acquire() as conn:
        reaped = await run_reads.get_run(conn, silent_run.run_id)
        kept = await run_reads.get_run(conn, alive_run.run_id)
        heartbeat_left = await conn.fetchval("SELECT count(*) FROM run_heartbeats WHERE run_id = $1", silent_run.run_id)
    assert reaped is not None and reaped.status is RunStatus.FAILED and "heartbeat" in (reaped.message or "")
    assert kept is not None and kept.status is RunStatus.RUNNING
    assert heartbeat_left == 0


async def test_reaper_fails_a_run_no_connector_picked_up(runtime, make_integration, pool):
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    much_later = Runtime(pool=pool, clock=lambda: datetime.now(UTC) + timedelta(hours=1), new_id=uuid.uuid4)
    await reap_stale_runs(much_later, heartbeat_timeout_s=30, queued_timeout_s=600)
    async with pool.acquire() as conn:
        reaped = await run_reads.get_run(conn, run.run_id)
    assert reaped is not None and reaped.status is RunStatus.FAILED and "No connector" in (reaped.message or "")


async def test_reaper_does_not_fail_runs_while_the_projector_lags(runtime, make_integration, pool):
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE runs SET status = 'RUNNING', started_at = now() WHERE id = $1", run.run_id)
        await conn.execute("INSERT INTO run_heartbeats VALUES ($1, 'c', now() - interval '1 minute')", run.run_id)
        # The projector applied partition 3 last 2 minutes ago: heartbeats since may be stuck in its backlog.
        await conn.execute(
            "INSERT INTO projector_progress VALUES ('t', 0, now()), ('t', 3, now() - interval '2 minutes')"
        )
    try:
        await reap_stale_runs(runtime, heartbeat_timeout_s=30, queued_timeout_s=600)
        async with pool.acquire() as conn:
            assert (await run_reads.get_run(conn, run.run_id)).status is RunStatus.RUNNING
            await conn.execute("UPDATE projector_progress SET caught_up_at = now()")
        await reap_stale_runs(runtime, heartbeat_timeout_s=30, queued_timeout_s=600)
        async with pool.acquire() as conn:
            assert (await run_reads.get_run(conn, run.run_id)).status is RunStatus.FAILED
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM projector_progress")
