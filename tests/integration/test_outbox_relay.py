"""The outbox relay publishes committed rows to the real broker and only then deletes them."""

from __future__ import annotations

import json
import uuid

import pytest

from services.core.store import outbox
from services.relay.outbox_relay import relay_once
from shared import topics
from shared.kafka import KafkaPublisher, make_consumer, make_producer
from tests.kafka_support import marker_event, received
from tests.support import eventually

pytestmark = pytest.mark.integration


async def test_relay_publishes_then_deletes(pool, kafka_bootstrap):
    marker = marker_event()
    consumer = make_consumer(kafka_bootstrap, topics.RUN_EVENTS, group_id=f"test-{uuid.uuid4()}",
                             client_id="test", from_latest=False)  # fmt: skip
    publisher = KafkaPublisher(lambda: make_producer(kafka_bootstrap, client_id="test-relay"))
    await consumer.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, [(topics.RUN_EVENTS, "k", marker)])
        while await relay_once(pool, publisher):
            pass
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE value = $1", marker) == 0

        assert await received(consumer, [marker]) == [marker]
    finally:
        await consumer.stop()
        await publisher.reset()


async def test_rolled_back_transactions_leave_nothing_to_publish(pool):
    marker = marker_event()
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, [(topics.RUN_EVENTS, "k", marker)])
            raise RuntimeError("the state change failed")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE value = $1", marker) == 0


async def published(consumer, integration_id: uuid.UUID, run_id: uuid.UUID, count: int) -> list:
    """The first `count` events of run `run_id` on RUN_EVENTS, checking each is keyed by its integration."""
    from shared.events import parse_run_log_event

    received: list = []

    async def all_of_them() -> bool:
        batches = await consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            for message in messages:
                if json.loads(message.value)["run_id"] != str(run_id):
                    continue  # other tests' messages, e.g. the relay's marker heartbeats
                assert message.key == str(integration_id).encode()
                received.append(parse_run_log_event(message.value))
        return len(received) >= count

    await eventually(all_of_them, timeout=20)
    return received


async def test_published_run_events_carry_the_documented_envelope(runtime, make_integration, pool, kafka_bootstrap):
    from services.core import ingestion
    from shared.events import RunCancelled, RunCancelRequested, RunRequested
    from tests.integration.conftest import OWNER

    consumer = make_consumer(kafka_bootstrap, topics.RUN_EVENTS, group_id=f"test-{uuid.uuid4()}", client_id="test")
    publisher = KafkaPublisher(lambda: make_producer(kafka_bootstrap, client_id="test-relay"))
    await consumer.start()
    try:
        integration = await make_integration()
        run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
        await ingestion.cancel_run(runtime, OWNER, integration.external_id)
        while await relay_once(pool, publisher):
            pass
        received = await published(consumer, integration.id, run.run_id, 3)
        assert [(type(e), e.seq) for e in received] == [(RunRequested, 1), (RunCancelRequested, 2), (RunCancelled, 3)]
        assert all(e.integration_external_id == integration.external_id for e in received)
        requested = received[0].payload.model_dump()
        assert requested == {"trigger": "manual", "requested_by": "owner", "principal_id": "0", "kind": "sync",
                             "task_id": requested["task_id"], "scope": None, "force_recursive": False,
                             "upload_id": None}  # fmt: skip
    finally:
        await consumer.stop()
        await publisher.reset()


async def test_an_imports_lineage_is_published_like_its_asset_changes(runtime, integrations, pool, kafka_bootstrap):
    from tests.integration.test_lineage import asset, custom_integration, sync

    consumer = make_consumer(kafka_bootstrap, topics.RUN_EVENTS, group_id=f"test-{uuid.uuid4()}", client_id="test")
    publisher = KafkaPublisher(lambda: make_producer(kafka_bootstrap, client_id="test-relay"))
    await consumer.start()
    try:
        integration = await custom_integration(integrations)
        a, b = (integration.id, "a"), (integration.id, "b")
        run = await sync(runtime, integration, [asset("a", "table", "a", ""), asset("b", "table", "b", "")], [(a, b)])
        while await relay_once(pool, publisher):
            pass
        received = await published(consumer, integration.id, run.run_id, 5)
        assert [e.type for e in received] == ["run.requested.v1", "run.started.v1", "run.assets_changed.v1",
                                              "run.lineage_reported.v1", "run.succeeded.v1"]  # fmt: skip
        assert received[0].payload.upload_id == run.upload_id is not None
        [edge] = received[3].payload.edges
        assert (edge.from_key, edge.to_key, edge.to_integration_id) == ("a", "b", integration.id)
    finally:
        await consumer.stop()
        await publisher.reset()
