"""Every Kafka message of real runs, on every topic, matches the AsyncAPI document the API serves."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared import topics
from shared.kafka import make_consumer
from tests.contracts.asyncapi_contract import Contract, official_errors
from tests.e2e.conftest import Client, Stack, postgres_integration
from tests.e2e.test_runs_end_to_end import create, trigger, wait_started
from tests.support import create_shop_database, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def every_topic(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer of every topic, positioned at the end of each partition before the test acts."""
    consumer = make_consumer(kafka_bootstrap, *topics.ALL_TOPICS, group_id=None, client_id="asyncapi-contract",
                             from_latest=True)  # fmt: skip
    await consumer.start()
    try:

        async def assigned() -> set[TopicPartition] | None:
            partitions = consumer.assignment()
            return partitions if {tp.topic for tp in partitions} == set(topics.ALL_TOPICS) else None

        for partition in await eventually(assigned, timeout=30):
            await consumer.position(partition)  # resolves "latest" now, not at the first fetch after the run
        yield consumer
    finally:
        await consumer.stop()


async def read_until(consumer: AIOKafkaConsumer, done: set[tuple[str, str]], keys: set[bytes]) -> list[ConsumerRecord]:
    """Our messages (by key) until every (topic, type) in `done` arrived, then the rest of every partition."""
    records: list[ConsumerRecord] = []

    async def read() -> None:
        for batch in (await consumer.getmany(timeout_ms=200)).values():
            records.extend(record for record in batch if record.key in keys)

    async def arrived() -> bool:
        await read()
        seen = {(r.topic, json.loads(r.value)["type"]) for r in records}
        return done <= seen

    await eventually(arrived, timeout=60)
    ends = await consumer.end_offsets(list(consumer.assignment()))

    async def drained() -> bool:
        await read()
        return all([await consumer.position(tp) >= end for tp, end in ends.items()])

    await eventually(drained, timeout=30)
    return records


async def test_every_message_of_a_run_and_a_cancel_matches_the_served_asyncapi_document(
    client: Client, stack: Stack, db: asyncpg.Connection, every_topic: AIOKafkaConsumer
) -> None:
    async with aiohttp.ClientSession() as session, session.get(stack.url + "/asyncapi.yaml") as response:
        assert response.status == 200 and response.content_type == "application/yaml"  # no key needed
        document = yaml.safe_load(await response.text())
    assert official_errors(document) == []

    source = await create_shop_database(stack.dsn, "source_asyncapi_e2e")
    await create(client, postgres_integration(source, "asyncapi-e2e"))
    integration_id: uuid.UUID = await db.fetchval("SELECT id FROM integrations WHERE external_id = 'asyncapi-e2e'")
    status, tested, _ = await client.call("POST", "/api/integrations/asyncapi-e2e/test")
    assert status == 200 and tested["status"] == "PASSED", tested
    await trigger(client, "asyncapi-e2e")
    assert (await client.wait_for_run("asyncapi-e2e", {"SUCCESS", "FAILED", "CANCELLED"}))["status"] == "SUCCESS"

    # A second run blocks on a locked view (a slow source) until it is cancelled.
    locker = await asyncpg.connect(source)
    try:
        async with locker.transaction():
            await locker.execute("LOCK TABLE sales.big_orders IN ACCESS EXCLUSIVE MODE")
            await wait_started(db, (await trigger(client, "asyncapi-e2e"))["ingestionRunId"])
            status, _, _ = await client.call("POST", "/api/integrations/asyncapi-e2e/cancel")
            assert status == 204
            ended = await client.wait_for_run("asyncapi-e2e", {"SUCCESS", "FAILED", "CANCELLED"}, timeout=30)
            assert ended["status"] == "CANCELLED", ended
    finally:
        await locker.close()

    keys = {str(integration_id).encode(), tested["testId"].encode()}
    expected = {(topics.RUN_REQUESTS, "command.start_run.v1"), (topics.RUN_CANCELLATIONS, "command.cancel_run.v1"),
                (topics.CONNECTION_TESTS, "command.test_connection.v1"),
                (topics.CONNECTOR_REPORTS, "run.succeeded.v1"), (topics.CONNECTOR_REPORTS, "run.cancelled.v1"),
                (topics.RUN_EVENTS, "run.succeeded.v1"), (topics.RUN_EVENTS, "run.cancelled.v1")}  # fmt: skip
    records = await read_until(every_topic, expected, keys)

    contract = Contract(document)
    broken = [problem for r in records for problem in contract.errors(r.topic, r.key, r.headers, r.value)]
    assert broken == []
    seen = {(r.topic, json.loads(r.value)["type"]) for r in records}
    assert {topic for topic, _ in seen} == set(topics.ALL_TOPICS)
    assert {t for topic, t in seen if topic == topics.RUN_EVENTS} >= {
        "run.requested.v1", "run.started.v1", "run.assets_changed.v1", "run.succeeded.v1",
        "run.cancel_requested.v1", "run.cancelled.v1"}  # fmt: skip
