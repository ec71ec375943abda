"""The system status: every process records its readiness in PostgreSQL through its ops wiring, the API reads
it with consumer lag, the outbox, the queue and dead letters, for organization owners only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.core import ingestion
from services.core.errors import Forbidden
from services.core.ingestion import Runtime
from services.core.model import Principal
from services.core.system import system_status
from shared import ops
from shared.group_lag import PartitionLag, group_lag
from shared.kafka import make_consumer
from tests.integration.conftest import OWNER, produce
from tests.support import eventually

pytestmark = pytest.mark.integration
SERVICES = ("api", "scheduler", "connector", "projector", "relay")


async def no_lag() -> list[PartitionLag]:
    return []


async def passing() -> str | None:
    return None


async def failing() -> str | None:
    return "no partitions assigned (yet)"


@pytest.fixture
async def db(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM process_status")
        yield conn


async def record(conn: asyncpg.Connection, service: str, ready: bool = True, age_s: float = 0.0,
                 interval_s: float = 5.0, instance: str | None = None) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO process_status (service, instance, ready, checks, interval_s, started_at, seen_at) "
        "VALUES ($1, $2, $3, $4, $5, now(), now() - make_interval(secs => $6))",
        service, instance or f"{service}-1", ready, {"database": "ok"}, interval_s, age_s,
    )  # fmt: skip


async def test_a_served_process_records_its_checks_and_is_shown_stopped_when_it_ends(pool, db):
    checks = {"database": passing, "kafka": failing}
    async with ops.serving("127.0.0.1", 0, ops.Ops(CollectorRegistry(), checks), "projector", pool, 0.1):

        async def recorded() -> asyncpg.Record | None:
            return await db.fetchrow("SELECT * FROM process_status WHERE service = 'projector'")

        row = await eventually(recorded)
        assert row["ready"] is False
        assert row["checks"] == {"database": "ok", "kafka": "no partitions assigned (yet)"}
        checks["kafka"] = passing  # the recorder re-runs the checks every period

        async def ready() -> bool:
            return bool(await db.fetchval("SELECT ready FROM process_status WHERE service = 'projector'"))

        await eventually(ready)
    row = await db.fetchrow("SELECT * FROM process_status WHERE service = 'projector'")
    assert (row["ready"], row["checks"]) == (False, {"process": "stopped"})


async def test_the_system_is_ready_only_with_a_fresh_ready_instance_of_every_service(runtime: Runtime, db):
    for service in SERVICES:
        await record(db, service)
    assert (await system_status(runtime, OWNER, no_lag)).ready

    await record(db, "notifier", ready=False)  # optional, but counted once it recorded a row
    found = await system_status(runtime, OWNER, no_lag)
    assert (found.ready, found.not_ready) == (False, ["notifier"])
    await db.execute("DELETE FROM process_status WHERE service = 'notifier'")

    # A scheduler silent for more than three of its periods is stale: ready as last recorded, but gone.
    await db.execute("DELETE FROM process_status WHERE service = 'scheduler'")
    await record(db, "scheduler", age_s=16, interval_s=5)
    found = await system_status(runtime, OWNER, no_lag)
    assert (found.ready, found.not_ready) == (False, ["scheduler"])
    assert [p.stale for p in found.processes if p.service == "scheduler"] == [True]
    await record(db, "scheduler", instance="scheduler-2")  # a second, fresh instance is enough
    assert (await system_status(runtime, OWNER, no_lag)).ready

    await db.execute("DELETE FROM process_status WHERE service = 'relay'")  # never recorded: not ready
    assert (await system_status(runtime, OWNER, no_lag)).not_ready == ["relay"]


async def test_the_system_status_shows_the_oldest_queued_run_and_a_lag_failure_instead_of_raising(
    runtime: Runtime, db, make_integration
):
    integration = await make_integration()
    mine = await ingestion.trigger_run(runtime, OWNER, integration.external_id)

    async def broker_away() -> list[PartitionLag]:
        raise TimeoutError

    found = await system_status(runtime, OWNER, broker_away)
    assert (found.consumer_lag, found.consumer_lag_error) == ([], "TimeoutError")
    oldest = found.oldest_queued_run
    assert oldest is not None and oldest.requested_at <= mine.requested_at
    # Earlier tests of this database may have left runs queued: the answer is the oldest of them all.
    queued = await db.fetch("SELECT id, requested_at FROM runs WHERE status = 'QUEUED'")
    assert oldest.run_id in {r["id"] for r in queued} and min(r["requested_at"] for r in queued) == oldest.requested_at
    assert found.outbox.depth >= 1  # its start command waits: no relay runs here


async def test_the_system_status_is_for_organization_owners_only(runtime: Runtime, db):
    member = Principal(key_id=uuid.uuid4(), name="member", org_owner=False)
    with pytest.raises(Forbidden):
        await system_status(runtime, member, no_lag)


async def test_group_lag_is_the_messages_after_each_groups_committed_offset(kafka_bootstrap: str, topic: str):
    group = f"lag-{uuid.uuid4().hex[:8]}"
    await produce(kafka_bootstrap, topic, 7)
    consumer = make_consumer(kafka_bootstrap, topic, group_id=group, client_id="lag-test")
    await consumer.start()
    try:
        await eventually(lambda: consumer.getmany(timeout_ms=500), timeout=30)  # joined and fetched
        await consumer.commit({TopicPartition(topic, 0): 3})
    finally:
        await consumer.stop()
    assert await group_lag(kafka_bootstrap, (group,)) == [PartitionLag(group, topic, 0, 4)]


@pytest.fixture
async def api(database: str, kafka_bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    key = "status-owner-" + uuid.uuid4().hex
    settings = ApiSettings(APP_ENV="test", DATABASE_URL=database, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                           BOOTSTRAP_API_KEY=key)  # fmt: skip
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")), key
    finally:
        await server.close()


async def call(url: str, key: str, method: str = "GET", body: Any = None) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers={"x-api-key": key}) as response,
    ):
        return response.status, response.content_type, await response.json(content_type=None)


async def test_get_system_status_answers_owners_and_refuses_other_keys_with_a_problem(api, db):
    url, owner_key = api
    for service in SERVICES:
        await record(db, service)
    status, _, body = await call(url + "/api/system/status", owner_key)
    assert status == 200, body
    assert body["ready"] is True and body["notReady"] == []
    assert {s["service"] for s in body["services"]} == set(SERVICES)
    assert body["consumerLagError"] is None and isinstance(body["consumerLag"], list)
    assert set(body["outbox"]) == {"depth", "oldestAgeSeconds"}
    assert set(body["deadLetters"]) == {"reports", "outbox"}

    status, _, issued = await call(url + "/api/api-keys", owner_key, "POST", {"name": "viewer", "teams": []})
    assert status == 201, issued
    status, content_type, problem = await call(url + "/api/system/status", issued["key"])
    assert (status, content_type) == (403, "application/problem+json")
    assert "organization-owner" in problem["detail"]
