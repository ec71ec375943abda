"""The outbox relay publishes committed rows to the real broker and only then deletes them."""

from __future__ import annotations

import uuid

import pytest

from services.core.store import outbox
from services.projector.relay import relay_once
from shared import topics
from shared.kafka import make_consumer, make_producer
from tests.support import eventually

pytestmark = pytest.mark.integration


async def test_relay_publishes_then_deletes(pool, kafka_bootstrap):
    marker = uuid.uuid4().hex.encode()
    consumer = make_consumer(kafka_bootstrap, topics.RUN_EVENTS, group_id=f"test-{uuid.uuid4()}",
                             client_id="test", from_latest=False)  # fmt: skip
    producer = make_producer(kafka_bootstrap, client_id="test-relay")
    await consumer.start()
    await producer.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, [(topics.RUN_EVENTS, "k", marker)])
        while await relay_once(pool, producer):
            pass
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM outbox WHERE value = $1", marker) == 0

        async def seen() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            return any(m.value == marker for ms in batches.values() for m in ms)

        assert await eventually(seen, timeout=20)
    finally:
        await consumer.stop()
        await producer.stop()


async def test_rolled_back_transactions_leave_nothing_to_publish(pool):
    marker = uuid.uuid4().hex.encode()
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, [(topics.RUN_EVENTS, "k", marker)])
            raise RuntimeError("the state change failed")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE value = $1", marker) == 0
