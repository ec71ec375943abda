"""The relay against the real broker when messages cannot be published: dead letters, retries, batches."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, RequestTimedOutError

from services.core.store import outbox
from services.relay.outbox_relay import BatchLimits, relay_once, run_relay
from shared.kafka import KafkaPublisher, make_admin, make_consumer, make_producer
from tests.kafka_support import received
from tests.support import eventually

pytestmark = pytest.mark.integration

SMALL_TOPIC_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
async def test_topics(kafka_bootstrap: str) -> AsyncIterator[tuple[str, str]]:
    """(a topic with the broker's limits, a topic that accepts at most 64 KiB per message); deleted after."""
    suffix = uuid.uuid4().hex[:8]
    plain, small = f"test.relay.{suffix}", f"test.relay-small.{suffix}"
    admin = make_admin(kafka_bootstrap, client_id="test-relay-topics")
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(plain, num_partitions=1, replication_factor=1),
            NewTopic(small, num_partitions=1, replication_factor=1,
                     topic_configs={"max.message.bytes": str(SMALL_TOPIC_LIMIT)}),
        ])  # fmt: skip
        yield plain, small
        await admin.delete_topics([plain, small])
    finally:
        await admin.close()


@pytest.fixture
async def publisher(kafka_bootstrap: str) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher(lambda: make_producer(kafka_bootstrap, client_id="test-relay-faults"))
    yield publisher
    await publisher.reset()


@pytest.fixture
async def consumer(kafka_bootstrap: str, test_topics: tuple[str, str]) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = make_consumer(kafka_bootstrap, *test_topics, group_id=f"test-{uuid.uuid4()}", client_id="test")
    await consumer.start()
    yield consumer
    await consumer.stop()


async def enqueue(pool: asyncpg.Pool, topic: str, values: list[bytes]) -> list[int]:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, [(topic, "k", value) for value in values])
        rows = await conn.fetch("SELECT id FROM outbox WHERE value = ANY($1::bytea[]) ORDER BY id", values)
    return [r["id"] for r in rows]


async def drain(pool: asyncpg.Pool, publisher: Any, limits: BatchLimits | None = None) -> list[int]:
    settled = []
    while batch := await relay_once(pool, publisher, limits or BatchLimits()):
        settled.append(batch)
    return settled


def marker(name: str) -> bytes:
    return f"{name}-{uuid.uuid4()}".encode()


@pytest.mark.parametrize(
    ("which_topic", "size"),
    [("plain", 9 * 1024 * 1024), ("small", 4 * SMALL_TOPIC_LIMIT)],
    ids=["larger-than-the-producer-may-send", "larger-than-the-topic-accepts"],
)
async def test_a_message_too_large_is_dead_lettered_and_the_ones_behind_it_are_published(
    pool, publisher, consumer, test_topics, which_topic, size
):
    topic = test_topics[0] if which_topic == "plain" else test_topics[1]
    before, after = marker("before"), marker("after")
    too_large = os.urandom(size)  # random: compression cannot bring it under the limit
    ids = await enqueue(pool, topic, [before, too_large, after])
    await drain(pool, publisher)
    async with pool.acquire() as conn:
        left = await conn.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[])", ids)
        dead = await conn.fetch("SELECT id, topic, value, size_bytes, reason FROM outbox_dead_letters "
                                "WHERE id = ANY($1::bigint[])", ids)  # fmt: skip
    assert left == 0
    assert [(d["id"], d["topic"], d["size_bytes"]) for d in dead] == [(ids[1], topic, size + 1)]
    assert dead[0]["value"] == too_large and "MessageSizeTooLargeError" in dead[0]["reason"]
    assert await received(consumer, [before, after]) == [before, after]


async def test_a_message_for_a_topic_that_does_not_exist_is_dead_lettered(pool, publisher, consumer, test_topics):
    nowhere = f"test.no-such-topic.{uuid.uuid4().hex[:8]}"
    [lost] = await enqueue(pool, nowhere, [marker("lost")])
    after = marker("after")
    await enqueue(pool, test_topics[0], [after])
    await drain(pool, publisher)
    async with pool.acquire() as conn:
        reason = await conn.fetchval("SELECT reason FROM outbox_dead_letters WHERE id = $1", lost)
    assert reason == f"topic '{nowhere}' does not exist on the cluster"
    assert await received(consumer, [after]) == [after]


class UnreachableBroker:
    """The cluster failing the way an outage does: at the metadata request, at send, or at the ack."""

    def __init__(self, where: str) -> None:
        self.where = where

    async def reset(self) -> None:
        return None

    async def topic_exists(self, topic: str) -> bool:
        if self.where == "metadata":
            raise KafkaError("Unable to get cluster metadata over all known brokers")
        return True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        if self.where == "send":
            raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(RequestTimedOutError())
        return future


@pytest.mark.parametrize("where", ["metadata", "send", "ack"])
async def test_a_broker_outage_is_retried_and_never_dead_lettered(pool, publisher, consumer, test_topics, where):
    await drain(pool, publisher)  # what other tests left behind
    values = [marker("a"), marker("b")]
    ids = await enqueue(pool, test_topics[0], values)
    for _ in range(3):
        with pytest.raises(KafkaError):
            await relay_once(pool, UnreachableBroker(where))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[])", ids) == 2
        assert await conn.fetchval("SELECT count(*) FROM outbox_dead_letters WHERE id = ANY($1::bigint[])", ids) == 0
    await drain(pool, publisher)  # the broker is back
    assert await received(consumer, values) == values


async def test_a_batch_stays_within_its_byte_budget_and_a_larger_message_goes_alone(
    pool, publisher, consumer, test_topics
):
    await drain(pool, publisher)
    values = [os.urandom(300 * 1024) for _ in range(7)] + [os.urandom(1200 * 1024), os.urandom(1000)]
    await enqueue(pool, test_topics[0], values)
    assert await drain(pool, publisher, BatchLimits(max_rows=500, max_bytes=1024 * 1024)) == [3, 3, 1, 1, 1]
    assert await received(consumer, values) == values


async def test_the_relay_listens_again_after_its_listen_connection_is_killed(pool, publisher, consumer, test_topics):
    await drain(pool, publisher)

    async def listener_pid() -> int | None:
        async with pool.acquire() as conn:
            pid: int | None = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %outbox%'"
            )
            return pid

    # Polling once a minute: only a NOTIFY can get the message out within the test's deadline.
    relay = asyncio.create_task(run_relay(pool, publisher, poll_interval_s=60))
    try:
        first = await eventually(listener_pid, timeout=20)
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_terminate_backend($1)", first)
        second = await eventually(lambda: _other_than(listener_pid, first), timeout=20)
        assert second != first and not relay.done()
        value = marker("after-reconnect")
        await enqueue(pool, test_topics[0], [value])
        assert await asyncio.wait_for(received(consumer, [value]), timeout=20) == [value]
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)


async def _other_than(probe: Any, pid: int) -> int | None:
    current: int | None = await probe()
    return current if current not in (None, pid) else None
