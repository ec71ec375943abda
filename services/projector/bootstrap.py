"""Wires the projector process: consumer of connector reports, and the pool it projects into."""

from __future__ import annotations

import structlog

from services.projector.service import run_projection
from shared import topics
from shared.kafka import make_consumer
from shared.postgres import create_pool
from shared.settings import CommonSettings

log = structlog.get_logger()
CONSUMER_GROUP = "projector"


async def run_projector(settings: CommonSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=4)
    consumer = make_consumer(settings, topics.CONNECTOR_REPORTS, group_id=CONSUMER_GROUP, client_id="projector")
    try:
        await consumer.start()
        log.info("projector_started")
        await run_projection(pool, consumer)
    finally:
        await consumer.stop()
        await pool.close()
