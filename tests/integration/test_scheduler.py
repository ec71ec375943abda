"""Scheduler and reaper against real Postgres: replicas never double-fire; silent runs end."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.core import ingestion
from services.core.imports.formats import Format
from services.core.ingestion import Runtime
from services.core.runs import RunStatus
from services.core.store import integrations as integration_store
from services.core.store import run_reads
from services.core.uploads import UploadService
from services.scheduler.bootstrap import tick
from services.scheduler.due import fire_due
from services.scheduler.reaper import reap_stale_runs
from services.scheduler.settings import SchedulerSettings
from shared import topics
from tests.integration.conftest import OWNER
from tests.integration.test_lineage import custom_integration

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
        # (A stale row of another topic, e.g. one a test projected, must not count.)
        await conn.execute(
            "INSERT INTO projector_progress VALUES ($1, 0, now()), ($1, 3, now() - interval '2 minutes'), "
            "('some-other-topic', 0, now() - interval '1 day')",
            topics.CONNECTOR_REPORTS,
        )
    try:
        await reap_stale_runs(runtime, heartbeat_timeout_s=30, queued_timeout_s=600)
        async with pool.acquire() as conn:
            assert (await run_reads.get_run(conn, run.run_id)).status is RunStatus.RUNNING
            await conn.execute(
                "UPDATE projector_progress SET caught_up_at = now() WHERE topic = $1", topics.CONNECTOR_REPORTS
            )
        await reap_stale_runs(runtime, heartbeat_timeout_s=30, queued_timeout_s=600)
        async with pool.acquire() as conn:
            assert (await run_reads.get_run(conn, run.run_id)).status is RunStatus.FAILED
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM projector_progress")


async def test_a_schedule_that_cannot_be_evaluated_is_reported_and_others_keep_firing_and_reaping(
    make_integration, pool
):
    good = await make_integration(schedule={"intervalSeconds": 3600})
    never_fires = await make_integration(schedule={"intervalSeconds": 3600})
    zone_gone = await make_integration(schedule={"intervalSeconds": 3600})
    silent = await make_integration()
    silent_run = await ingestion.trigger_run(
        Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4), OWNER, silent.external_id
    )
    async with pool.acquire() as conn:
        # Rows as validation could not have caught them: written before it existed, or their time zone
        # has left tzdata since. Both are due and sort before the good one.
        await conn.execute("UPDATE integrations SET schedule = $2, next_fire_at = NULL WHERE id = $1",
                           never_fires.id, {"cron": "0 0 31 2 *", "timezone": "UTC"})  # fmt: skip
        await conn.execute(
            "UPDATE integrations SET schedule = $2, next_fire_at = now() - interval '2 minutes' WHERE id = $1",
            zone_gone.id,
            {"cron": "0 3 * * *", "timezone": "Mars/Olympus"},
        )
        await conn.execute("UPDATE integrations SET next_fire_at = now() - interval '1 minute' WHERE id = $1", good.id)
        await conn.execute("UPDATE runs SET status = 'RUNNING', started_at = now() WHERE id = $1", silent_run.run_id)
        await conn.execute("INSERT INTO run_heartbeats VALUES ($1, 'c', now() - interval '1 minute')",
                           silent_run.run_id)  # fmt: skip
    settings = SchedulerSettings(heartbeat_timeout_s=30, queued_timeout_s=600)
    later = Runtime(pool=pool, clock=lambda: datetime.now(UTC) + timedelta(seconds=5), new_id=uuid.uuid4)
    try:
        await tick(later, settings)
        async with pool.acquire() as conn:
            fired = await conn.fetch("SELECT outcome FROM schedule_fires WHERE integration_id = $1", good.id)
            reaped = await run_reads.get_run(conn, silent_run.run_id)
            broken = {i.external_id: i for i in [await integration_store.get_by_external_id(conn, x.external_id)
                                                 for x in (never_fires, zone_gone)] if i}  # fmt: skip
            broken_fires = await conn.fetchval("SELECT count(*) FROM schedule_fires WHERE integration_id = ANY($1)",
                                               [never_fires.id, zone_gone.id])  # fmt: skip
        assert [f["outcome"] for f in fired] == ["fired"]
        assert reaped is not None and reaped.status is RunStatus.FAILED
        assert "'0 0 31 2 *' never fires" in (broken[never_fires.external_id].schedule_error or "")
        assert "'Mars/Olympus' is not an IANA time zone" in (broken[zone_gone.external_id].schedule_error or "")
        assert broken_fires == 0
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM integrations WHERE id = ANY($1)", [never_fires.id, zone_gone.id])


async def test_a_failing_schedule_is_retried_later_not_every_tick_and_clears_once_it_evaluates(make_integration, pool):
    integration = await make_integration(schedule={"intervalSeconds": 3600})
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET schedule = $2, next_fire_at = NULL WHERE id = $1",
                           integration.id, {"cron": "0 0 31 2 *", "timezone": "UTC"})  # fmt: skip
    now = datetime.now(UTC)
    try:
        await fire_due(Runtime(pool=pool, clock=lambda: now, new_id=uuid.uuid4))
        async with pool.acquire() as conn:
            first = await conn.fetchrow("SELECT schedule_error_at, next_fire_at FROM integrations WHERE id = $1",
                                        integration.id)  # fmt: skip
            # Fixed by an edit (the API resets next_fire_at); the scheduler clears the error at its retry.
            await conn.execute("UPDATE integrations SET schedule = $2 WHERE id = $1", integration.id,
                               {"intervalSeconds": 3600, "timezone": "UTC"})  # fmt: skip
        await fire_due(Runtime(pool=pool, clock=lambda: now + timedelta(seconds=10), new_id=uuid.uuid4))
        async with pool.acquire() as conn:
            too_soon = await conn.fetchval("SELECT schedule_error_at FROM integrations WHERE id = $1", integration.id)
        await fire_due(Runtime(pool=pool, clock=lambda: now + timedelta(minutes=2), new_id=uuid.uuid4))
        async with pool.acquire() as conn:
            retried = await conn.fetchrow(
                "SELECT schedule_error, schedule_error_at, next_fire_at FROM integrations WHERE id = $1", integration.id
            )
        assert first["schedule_error_at"] == now and first["next_fire_at"] is None
        assert too_soon == now  # not evaluated again within the retry delay
        assert retried["schedule_error"] is None and retried["schedule_error_at"] is None
        assert retried["next_fire_at"] == now + timedelta(minutes=2) + timedelta(hours=1)
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM integrations WHERE id = $1", integration.id)


async def test_changing_a_schedule_clears_its_error_at_once(make_integration, integrations, pool):
    from services.core.integrations import IntegrationFields

    integration = await make_integration(schedule={"intervalSeconds": 3600})
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET schedule_error = 'never fires', schedule_error_at = now() "
                           "WHERE id = $1", integration.id)  # fmt: skip
    fixed = IntegrationFields.model_validate({"schedule": {"cron": "0 3 * * *"}})
    updated = await integrations.update(OWNER, integration.external_id, fixed)
    assert updated.schedule_error is None


async def test_a_reaped_import_says_to_upload_again(runtime, integrations, pool):
    """A crawl is triggered again; an import's upload is gone once its run ended, and a custom integration has no
    trigger: the reason says what the person can do."""
    integration = await custom_integration(integrations)
    accepted = await UploadService(runtime, integrations).accept(
        OWNER, integration, Format.FILE_CSV, {"file": b"database,schema,name,col_name\nshop,public,orders,id\n"}
    )
    assert accepted.run is not None
    async with pool.acquire() as conn:
        await conn.execute("UPDATE runs SET status = 'RUNNING', started_at = now() WHERE id = $1", accepted.run.run_id)
        await conn.execute("INSERT INTO run_heartbeats VALUES ($1, 'c', now() - interval '1 minute')",
                           accepted.run.run_id)  # fmt: skip
    await reap_stale_runs(runtime, heartbeat_timeout_s=30, queued_timeout_s=600)
    async with pool.acquire() as conn:
        reaped = await run_reads.get_run(conn, accepted.run.run_id)
    assert reaped is not None and reaped.status is RunStatus.FAILED
    assert "heartbeat" in (reaped.message or "") and "Upload the file again" in (reaped.message or "")
