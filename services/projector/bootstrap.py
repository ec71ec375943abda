"""Wires the projector process: consumer of connector reports, the pool it projects into, its ops port."""

from __future__ import annotations

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.core.store import gauges
from services.projector.service import run_projection
from services.projector.settings import ProjectorSettings
from shared import ops, topics
from shared.kafka import make_consumer
from shared.metrics import PROJECTOR, record_consumer_lag
from shared.postgres import create_pool

log = structlog.get_logger()
CONSUMER_GROUP = "projector"


def projector_ops(pool: asyncpg.Pool, consumer: AIOKafkaConsumer, settings: ProjectorSettings) -> ops.Ops:
    """Ready when it can write and is caught up: the database answers, the group assigned it partitions and
    no partition has more than PROJECTOR_READY_MAX_LAG reports waiting."""

    async def refresh() -> None:
        await record_consumer_lag(PROJECTOR.consumer_lag, {CONSUMER_GROUP: consumer})
        async with pool.acquire() as conn:
            age = await gauges.projector_caught_up_age(conn, topics.CONNECTOR_REPORTS)
        PROJECTOR.caught_up_age.set(age if age is not None else float("nan"))

    checks = {
        "database": ops.database_reachable(pool),
        "kafka": ops.partitions_assigned(consumer, max_lag=settings.ready_max_lag),
    }
    return ops.Ops(PROJECTOR.registry, checks, refresh)


async def run_projector(settings: ProjectorSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=4)
    consumer = make_consumer(settings, topics.CONNECTOR_REPORTS, group_id=CONSUMER_GROUP, client_id="projector")
    try:
        async with ops.serving(
            settings.ops_host, settings.ops_port, projector_ops(pool, consumer, settings), "projector", pool
        ):
            await consumer.start()
            log.info("projector_started")
            await run_projection(pool, consumer)
    finally:
        await consumer.stop()
        await pool.close()
