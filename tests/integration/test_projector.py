"""The projector against the real broker and database: poison isolation, dead letters, progress marks."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from services.core import ingestion
from services.core.runs import RunState
from services.core.store import runlog
from services.projector.service import Progress, run_projection
from shared.events import (
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    HeartbeatPayload,
    RunHeartbeat,
    RunOwner,
    RunStarted,
    RunSucceeded,
    StartedPayload,
)
from shared.kafka import make_consumer, make_producer
from tests.integration.conftest import OWNER
from tests.support import eventually

pytestmark = pytest.mark.integration
CONNECTOR = RunOwner(connector_id="c-projector-test", attempt=1)


@pytest.fixture
async def projector(pool: asyncpg.Pool, kafka_bootstrap: str, topic: str) -> AsyncIterator[None]:
    consumer = make_consumer(kafka_bootstrap, topic, group_id=f"test-{topic}", client_id="test-projector")
    await consumer.start()
    task = asyncio.create_task(run_projection(pool, consumer))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await consumer.stop()


async def produce(kafka_bootstrap: str, topic: str, *messages: tuple[uuid.UUID, bytes]) -> None:
    producer = make_producer(kafka_bootstrap, client_id="test-projector-input")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=str(key).encode())
    finally:
        await producer.stop()


async def running_run(runtime, make_integration) -> RunState:
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    start = RunStarted(**about(run), payload=StartedPayload(connector_id=CONNECTOR.connector_id))
    async with runtime.pool.acquire() as conn, conn.transaction():
        result = await runlog.append(conn, run.run_id, [start])
    assert result.state is not None
    return result.state


def about(run: RunState) -> dict:
    return {"integration_id": run.integration_id, "integration_external_id": run.integration_external_id,
            "run_id": run.run_id, "owner": CONNECTOR}  # fmt: skip


def success(run: RunState) -> bytes:
    return RunSucceeded(**about(run), payload=FinishedPayload.model_validate({"counts": {}})).to_bytes()


async def status_of(pool: asyncpg.Pool, run: RunState) -> tuple[str, str | None]:
    row = await pool.fetchrow("SELECT status, message FROM runs WHERE id = $1", run.run_id)
    return row["status"], row["message"]


async def test_a_poison_report_fails_its_own_run_and_the_rest_of_the_batch_is_applied(
    runtime, make_integration, pool, kafka_bootstrap, topic, projector
):
    poisoned, healthy = await running_run(runtime, make_integration), await running_run(runtime, make_integration)
    asset = {"key": "db/s", "kind": "schema", "name": "s", "fingerprint": "f", "attributes": {"comment": "a\x00b"}}
    poison = AssetsChanged(**about(poisoned), payload=AssetsChangedPayload.model_validate({"upserted": [asset]}))
    # Same key, so one partition and one batch: the poison comes first.
    await produce(kafka_bootstrap, topic, (poisoned.integration_id, poison.to_bytes()),
                  (poisoned.integration_id, success(healthy)), (poisoned.integration_id, b"\xff not json"))  # fmt: skip

    async def settled() -> bool:
        return (await status_of(pool, poisoned))[0] == "FAILED" and (await status_of(pool, healthy))[0] == "SUCCESS"

    await eventually(settled, timeout=30)
    _, message = await status_of(pool, poisoned)
    assert "report_dead_letters" in (message or "") and "cannot be applied" in (message or "")
    letters = await pool.fetch(
        'SELECT run_id, type, reason FROM report_dead_letters WHERE topic = $1 ORDER BY "offset"', topic
    )
    assert [(r["run_id"], r["type"]) for r in letters] == [(poisoned.run_id, "run.assets_changed.v1"), (None, None)]
    assert "unreadable report" in letters[1]["reason"]


async def test_an_off_contract_report_is_dead_lettered_and_ends_the_run_it_names(
    runtime, make_integration, pool, kafka_bootstrap, topic, projector
):
    run = await running_run(runtime, make_integration)
    off_contract = (
        b'{"type": "run.succeeded.v1", "run_id": "%s", "integration_id": "%s", "integration_external_id": "x", '
        b'"owner": {"connector_id": "c", "attempt": 1}, "payload": {"counts": {"assets_processed": "many"}}}'
        % (str(run.run_id).encode(), str(run.integration_id).encode())
    )
    await produce(kafka_bootstrap, topic, (run.integration_id, off_contract))

    async def failed() -> bool:
        return (await status_of(pool, run))[0] == "FAILED"

    await eventually(failed, timeout=30)
    reason = await pool.fetchval("SELECT reason FROM report_dead_letters WHERE run_id = $1", run.run_id)
    assert "payload.counts.assets_processed" in reason


async def test_progress_reaches_every_report_the_broker_acknowledged(
    runtime, make_integration, pool, kafka_bootstrap, topic, projector
):
    run = await running_run(runtime, make_integration)
    beat = RunHeartbeat(**about(run), payload=HeartbeatPayload(connector_id=CONNECTOR.connector_id))
    await produce(kafka_bootstrap, topic, (run.integration_id, beat.to_bytes()), (run.integration_id, success(run)))
    produced_at = datetime.now(UTC)

    async def caught_up() -> bool:
        marks = await pool.fetch("SELECT caught_up_at FROM projector_progress WHERE topic = $1", topic)
        return len(marks) == 2 and min(m["caught_up_at"] for m in marks) >= produced_at

    await eventually(caught_up, timeout=30)
    assert (await status_of(pool, run))[0] == "SUCCESS"


async def test_a_stalled_projector_never_claims_reports_that_arrived_while_it_stalled(pool, kafka_bootstrap, topic):
    """A fetch answered before a stall (SIGSTOP, a long GC or CPU starvation) is processed after it, stamped with
    the time it was processed. Reports acknowledged during the stall are not applied: no mark may cover them."""
    consumer = make_consumer(kafka_bootstrap, topic, group_id=f"test-{topic}", client_id="test-projector")
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=200)
        for _ in range(3):  # positions known, and a long poll for each partition on its way
            await consumer.getmany(timeout_ms=200)
        sent_at: list[datetime] = []

        def produce_mid_stall() -> None:
            time.sleep(1.5)  # after the in-flight long poll (fetch_max_wait_ms 500) was answered, empty
            sent_at.append(datetime.now(UTC))
            asyncio.run(produce(kafka_bootstrap, topic, *[(uuid.uuid4(), b"{}") for _ in range(8)]))

        producer = threading.Thread(target=produce_mid_stall)
        producer.start()
        time.sleep(3)  # noqa: ASYNC251 - the stall itself: nothing is fetched, applied or marked
        producer.join()
        resumed = int(1000 * time.time())
        while not all((consumer.last_poll_timestamp(tp) or 0) >= resumed for tp in consumer.assignment()):  # noqa: ASYNC110
            await asyncio.sleep(0)  # the answers that waited through the stall are processed now
        progress = Progress(lambda: datetime.now(UTC))
        await progress.mark(pool, consumer)
        await progress.mark(pool, consumer)
        marks = await pool.fetch("SELECT caught_up_at FROM projector_progress WHERE topic = $1", topic)
        assert all(mark["caught_up_at"] < sent_at[0] for mark in marks), (marks, sent_at)
        consumed = 0
        while consumed < 8:  # now they are applied (positions move only past what a batch handed out)
            consumed += sum(len(batch) for batch in (await consumer.getmany(timeout_ms=500)).values())
        await progress.mark(pool, consumer)
        marks = await pool.fetch("SELECT caught_up_at FROM projector_progress WHERE topic = $1", topic)
        assert len(marks) == 2 and all(mark["caught_up_at"] > sent_at[0] for mark in marks), (marks, sent_at)
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    "hostile",
    [
        '{"type": "run.x\\u0000", "run_id": "%(run)s"}',  # the validation error repeats the NUL tag
        '{"type": "run.started.v1\\ud800", "run_id": "%(run)s"}',  # a lone surrogate only json.loads accepts
    ],
    ids=["nul-in-type", "lone-surrogate-in-type"],
)
async def test_hostile_text_in_a_report_is_dead_lettered_and_projection_goes_on(
    runtime, make_integration, pool, kafka_bootstrap, topic, projector, hostile
):
    named, healthy = await running_run(runtime, make_integration), await running_run(runtime, make_integration)
    value = (hostile % {"run": named.run_id}).encode()
    await produce(kafka_bootstrap, topic, (named.integration_id, value), (named.integration_id, success(healthy)))

    async def settled() -> bool:
        return (await status_of(pool, named))[0] == "FAILED" and (await status_of(pool, healthy))[0] == "SUCCESS"

    await eventually(settled, timeout=30)
    row = await pool.fetchrow("SELECT type, reason FROM report_dead_letters WHERE run_id = $1", named.run_id)
    assert row is not None and "\x00" not in row["reason"] and "\x00" not in (row["type"] or "")


async def test_a_heartbeat_the_database_refuses_is_dropped_and_projection_goes_on(
    runtime, make_integration, pool, kafka_bootstrap, topic, projector
):
    run = await running_run(runtime, make_integration)
    hostile = RunHeartbeat(**about(run) | {"owner": RunOwner(connector_id="c\x00", attempt=1)},
                           payload=HeartbeatPayload(connector_id="c\x00"))  # fmt: skip
    await produce(kafka_bootstrap, topic, (run.integration_id, hostile.to_bytes()), (run.integration_id, success(run)))

    async def succeeded() -> bool:
        return (await status_of(pool, run))[0] == "SUCCESS"

    await eventually(succeeded, timeout=30)
