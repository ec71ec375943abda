"""Faults caused for real against the running services: a paused projector, connectors joining and leaving."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import topics
from tests.e2e.conftest import Client, Stack, postgres_integration
from tests.support import eventually

pytestmark = pytest.mark.e2e
TERMINAL = {"SUCCESS", "FAILED", "CANCELLED"}


@pytest.fixture
async def view_lock(shop_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """An exclusive lock on a view of the source: every crawl blocks on it until `release_lock`."""
    conn = await asyncpg.connect(shop_dsn)
    await conn.execute("BEGIN; LOCK TABLE sales.big_orders IN ACCESS EXCLUSIVE MODE")
    yield conn
    await conn.close()


async def release_lock(conn: asyncpg.Connection) -> None:
    await conn.execute("ROLLBACK")


async def run_of(db: asyncpg.Connection, run_id: str) -> asyncpg.Record:
    return await db.fetchrow("SELECT status, message, started_at FROM runs WHERE id = $1", uuid.UUID(run_id))


async def test_a_paused_projector_gets_no_healthy_run_reaped(client: Client, stack: Stack, db, shop_dsn, view_lock):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "paused-projector-e2e"))
    status, accepted, _ = await client.call("POST", "/api/integrations/paused-projector-e2e/run")
    assert status == 202
    run_id = accepted["ingestionRunId"]

    async def started() -> bool:
        return (await run_of(db, run_id))["started_at"] is not None

    await eventually(started)
    projector = stack.processes["projector"]
    projector.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(2 * 4 + 1)  # twice the stack's HEARTBEAT_TIMEOUT_SECONDS, while heartbeats pile up
    finally:
        projector.send_signal(signal.SIGCONT)
    # Caught up again, the projector must not have let the reaper judge the run by stale heartbeats.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert (await run_of(db, run_id))["status"] == "RUNNING"
        await asyncio.sleep(0.2)
    await release_lock(view_lock)
    run = await client.wait_for_run("paused-projector-e2e", TERMINAL)
    assert run["status"] == "SUCCESS", run


async def committed_lag(bootstrap: str) -> int:
    """How many run requests the connector group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets("connector")
        [described] = await admin.describe_topics([topics.RUN_REQUESTS])
        partitions = [TopicPartition(topics.RUN_REQUESTS, p["partition"]) for p in described["partitions"]]
        ends = await consumer.end_offsets(partitions)
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


def started_by_log(stack: Stack, names: list[str]) -> Counter[str]:
    """How often each run was started (crawled), across the logs of every connector process."""
    counts: Counter[str] = Counter()
    for name in names:
        for line in stack.log(name).splitlines():
            if '"run_started"' in line:
                counts[json.loads(line)["run_id"]] += 1
    return counts


async def test_connectors_joining_and_leaving_mid_runs_crawl_every_run_once(
    client: Client, stack: Stack, db, shop_dsn, view_lock, kafka_bootstrap
):
    names = [f"rebalance-{i:02d}-e2e" for i in range(20)]
    for name in names:
        assert (await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, name)))[0] == 201
    stack.start("connector-b", "connector", CONNECTOR_ID="connector-b")
    try:
        await eventually(lambda: logged(stack, "connector-b", "partitions_assigned"), timeout=30)
        run_ids = []
        for name in names:  # 8 crawls block on the lock, 12 requests wait their turn
            status, accepted, _ = await client.call("POST", f"/api/integrations/{name}/run")
            assert status == 202
            run_ids.append(accepted["ingestionRunId"])
        # A third instance joins while runs are in flight and requests wait: the group rebalances.
        stack.start("connector-c", "connector", CONNECTOR_ID="connector-c", CONNECTOR_SHUTDOWN_GRACE_SECONDS="30")
        await eventually(lambda: logged(stack, "connector-c", "partitions_assigned"), timeout=30)
        await eventually(lambda: logged(stack, "connector-c", "run_started"), timeout=30)
        # ...and leaves again while its runs still crawl: it drains them, its waiting requests go back.
        leaving = stack.processes.pop("connector-c")
        leaving.send_signal(signal.SIGTERM)
        await eventually(lambda: logged(stack, "connector-c", "connector_draining"), timeout=10)
        await release_lock(view_lock)

        async def all_ended() -> bool:
            statuses = [(await run_of(db, r))["status"] for r in run_ids]
            return all(s in TERMINAL for s in statuses)

        await eventually(all_ended, timeout=90)
        await asyncio.get_running_loop().run_in_executor(None, leaving.wait, 30)
        outcomes = Counter([(await run_of(db, r))["status"] for r in run_ids])
        assert outcomes == {"SUCCESS": 20}, [dict(await run_of(db, r)) for r in run_ids]
        starts = await db.fetch(
            "SELECT run_id, count(*) AS n FROM run_events WHERE run_id = ANY($1::uuid[]) AND type = 'run.started.v1' "
            "GROUP BY run_id", [uuid.UUID(r) for r in run_ids]
        )  # fmt: skip
        assert sorted(r["n"] for r in starts) == [1] * 20
        crawled = started_by_log(stack, ["connector", "connector-b", "connector-c"])
        assert {r: crawled[r] for r in run_ids} == dict.fromkeys(run_ids, 1)
        assert sum(log_has(stack, c, "run_started") for c in ("connector", "connector-b", "connector-c")) >= 2

        async def offsets_caught_up() -> bool:
            return await committed_lag(kafka_bootstrap) == 0

        await eventually(offsets_caught_up, timeout=30)
    finally:
        stack.processes.pop("connector-c", None)
        stack.stop("connector-b")


def log_has(stack: Stack, name: str, event: str) -> bool:
    return f'"{event}"' in stack.log(name)


async def logged(stack: Stack, name: str, event: str) -> bool:
    return log_has(stack, name, event)
