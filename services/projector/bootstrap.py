"""Wires the projector process: the report projection and the outbox relay, side by side."""

from __future__ import annotations

import asyncio

import structlog

from services.projector.relay import run_relay
from services.projector.service import run_projection
from shared import topics
from shared.kafka import make_consumer, make_producer
from shared.postgres import create_pool
from shared.settings import CommonSettings

log = structlog.get_logger()
CONSUMER_GROUP = "projector"


async def run_projector(settings: CommonSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=6)
    producer = make_producer(settings.kafka_bootstrap, client_id="outbox-relay")
    consumer = make_consumer(
        settings.kafka_bootstrap, topics.CONNECTOR_REPORTS, group_id=CONSUMER_GROUP, client_id="projector"
    )
    try:
        await producer.start()
        await consumer.start()
        log.info("projector_started")
        async with asyncio.TaskGroup() as group:
            group.create_task(run_projection(pool, consumer), name="projection")
            group.create_task(run_relay(pool, producer), name="outbox-relay")
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()
