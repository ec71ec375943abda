"""The ops port of each process kind, served the way its bootstrap wires it, against the real broker and
database: /readyz says not ready until the service can do its job, and names why."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.core import ingestion
from services.core.ingestion import Runtime
from services.notifier.bootstrap import notifier_ops
from services.projector.bootstrap import projector_ops
from services.projector.settings import ProjectorSettings
from services.relay.bootstrap import relay_ops
from services.relay.settings import RelaySettings
from services.scheduler.bootstrap import TickClock, scheduler_ops
from services.scheduler.due import fire_due
from services.scheduler.reaper import reap_stale_runs
from shared import ops
from shared.kafka import make_consumer
from shared.metrics import SCHEDULER
from shared.postgres import create_pool, migrate
from tests.conftest import MIGRATIONS
from tests.integration.conftest import OWNER, produce
from tests.support import admin_dsn, eventually, recreate_database

pytestmark = pytest.mark.integration


@asynccontextmanager
async def serving(served: ops.Ops) -> AsyncIterator[str]:
    async with ops.serving("127.0.0.1", 0, served, "test") as port:
        yield f"http://127.0.0.1:{port}"


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json(content_type=None)


async def ready_is(url: str, status: int) -> dict[str, Any] | None:
    code, body = await get(url + "/readyz")
    return body if code == status else None


async def test_the_projector_is_ready_only_once_partitions_are_assigned_and_its_lag_is_below_the_bound(
    pool, kafka_bootstrap, topic
):
    await produce(kafka_bootstrap, topic, 20)
    consumer = make_consumer(kafka_bootstrap, topic, group_id=f"ops-{uuid.uuid4().hex}", client_id="ops-test")
    settings = ProjectorSettings(PROJECTOR_READY_MAX_LAG=5)
    async with serving(projector_ops(pool, consumer, settings)) as url:
        assert await get(url + "/livez") == (200, {"status": "alive"})
        code, body = await get(url + "/readyz")
        assert code == 503 and body["checks"] == {"database": "ok", "kafka": "no partitions assigned (yet)"}
        await consumer.start()
        try:

            async def fetched_one() -> bool:
                return bool(await consumer.getmany(timeout_ms=200, max_records=1))

            async def lagging() -> dict[str, Any] | None:
                body = await ready_is(url, 503)
                return body if body and body["checks"]["kafka"].startswith("lag above") else None

            async def drained() -> dict[str, Any] | None:
                await consumer.getmany(timeout_ms=200, max_records=100)
                return await ready_is(url, 200)

            # One record handed out: 19 reports wait on partition 0, above the bound of 5.
            await eventually(fetched_one, timeout=60)
            behind = await eventually(lagging, timeout=30)
            assert behind["checks"] == {"database": "ok", "kafka": "lag above 5 on partitions {0: 19}"}
            ready = await eventually(drained, timeout=60)
            assert ready == {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}}
            _, text = await _metrics(url)
            assert f'icp_consumer_lag_messages{{group="projector",partition="0",topic="{topic}"}} 0.0' in text
        finally:
            await consumer.stop()


async def _metrics(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        return response.status, await response.text()


@pytest.fixture
async def own_database(infrastructure: tuple[str, str]) -> AsyncIterator[tuple[str, asyncpg.Pool]]:
    """A migrated database of this test alone: it is made unreachable, or its outbox filled."""
    name = f"ingestion_ops_{uuid.uuid4().hex[:8]}"
    dsn = await recreate_database(infrastructure[0], name)
    await migrate(dsn, MIGRATIONS)
    pool = await create_pool(dsn, max_size=2)
    try:
        yield name, pool
    finally:
        await pool.close()
        await _allow_connections(infrastructure[0], name, True)


async def _allow_connections(dsn: str, name: str, allowed: bool) -> None:
    conn = await asyncpg.connect(admin_dsn(dsn))
    try:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await conn.close()


async def test_the_scheduler_is_not_ready_while_its_database_is_down_and_ready_again_after(
    infrastructure, own_database
):
    name, pool = own_database
    async with serving(scheduler_ops(pool, TickClock(tick_interval_s=1))) as url:
        assert await eventually(lambda: ready_is(url, 200))
        await _allow_connections(infrastructure[0], name, False)  # every connection cut, none allowed
        down = await eventually(lambda: ready_is(url, 503), timeout=30)
        assert down["checks"]["loop"] == "ok" and down["checks"]["database"] != "ok", down
        assert (await get(url + "/livez"))[0] == 200  # not a reason to restart the process
        code, text = await _metrics(url)  # the gauges cannot be read; the counters are still served
        assert code == 200 and "icp_runs_reaped_total" in text
        await _allow_connections(infrastructure[0], name, True)
        assert await eventually(lambda: ready_is(url, 200), timeout=30)


async def test_the_scheduler_is_not_ready_when_its_loop_stopped_ticking(pool):
    clock = TickClock(tick_interval_s=1)
    async with serving(scheduler_ops(pool, clock)) as url:
        assert await ready_is(url, 200)
        clock.last -= 31  # the loop hung in a step for longer than 30 s
        body = await ready_is(url, 503)
        assert body is not None and body["checks"]["loop"] == "no tick finished for 31s"


async def test_the_relay_is_not_ready_while_the_oldest_outbox_row_waits_too_long(own_database):
    _, pool = own_database
    settings = RelaySettings(RELAY_READY_MAX_OUTBOX_AGE_SECONDS=60)
    async with serving(relay_ops(pool, settings)) as url:
        assert await ready_is(url, 200)
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO outbox (topic, key, value, created_at) VALUES "
                               "('t', 'k', 'v', now() - interval '2 minutes'), ('t', 'k', 'v', now())")  # fmt: skip
        body = await ready_is(url, 503)
        assert body is not None and body["checks"]["outbox"].startswith("the oldest of 2 outbox rows waits since 12")
        code, text = await _metrics(url)
        assert code == 200 and "icp_outbox_depth 2.0" in text and "icp_outbox_oldest_age_seconds 12" in text


async def test_the_scheduler_counts_fires_by_outcome_and_reaped_runs_and_reads_runs_by_status(
    runtime: Runtime, make_integration, pool
):
    def sample(name: str, **labels: str) -> float:
        return SCHEDULER.registry.get_sample_value(name, labels) or 0.0

    integration = await make_integration(schedule={"intervalSeconds": 3600})
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET next_fire_at = now() - interval '1 minute' WHERE id = $1",
                           integration.id)  # fmt: skip
    fired, reaped = sample("icp_schedule_fires_total", outcome="fired"), sample("icp_runs_reaped_total")
    await fire_due(runtime)
    assert sample("icp_schedule_fires_total", outcome="fired") == fired + 1
    much_later = Runtime(pool=pool, clock=lambda: datetime.now(UTC) + timedelta(hours=1), new_id=uuid.uuid4)
    assert await reap_stale_runs(much_later, heartbeat_timeout_s=30, queued_timeout_s=600) >= 1
    assert sample("icp_runs_reaped_total") >= reaped + 1
    await ingestion.trigger_run(runtime, OWNER, integration.external_id)  # QUEUED again, by hand
    async with serving(scheduler_ops(pool, TickClock(1))) as url:
        _, text = await _metrics(url)
    async with pool.acquire() as conn:
        queued = await conn.fetchval(
            "SELECT count(*) FROM runs r JOIN integrations i ON i.id = r.integration_id "
            "WHERE status = 'QUEUED' AND i.source = 'postgres' AND trigger = 'manual'"
        )
    assert f'icp_runs{{source="postgres",status="QUEUED",trigger="manual"}} {float(queued)}' in text


async def test_the_notifier_is_not_ready_while_it_falls_behind_on_the_run_events(pool, kafka_bootstrap, topic):
    # A consumer stuck retrying what it cannot queue (the database refusing, a bug) must not look ready.
    await produce(kafka_bootstrap, topic, 20)
    consumer = make_consumer(kafka_bootstrap, topic, group_id=f"ops-{uuid.uuid4().hex}", client_id="ops-test")
    async with serving(notifier_ops(pool, consumer, max_lag=5)) as url:
        await consumer.start()
        try:

            async def lagging() -> dict[str, Any] | None:
                await consumer.getmany(timeout_ms=200, max_records=1)  # joined, and knows the highwater
                body = await ready_is(url, 503)
                return body if body and body["checks"]["kafka"].startswith("lag above") else None

            async def caught_up() -> dict[str, Any] | None:
                await consumer.getmany(timeout_ms=200, max_records=100)
                return await ready_is(url, 200)

            await eventually(lagging, timeout=30)
            await eventually(caught_up, timeout=30)
        finally:
            await consumer.stop()
