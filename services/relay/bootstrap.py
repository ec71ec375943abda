"""Wires the relay process: a pool (with one LISTEN connection), a publisher (an idempotent producer) and
its ops port."""

from __future__ import annotations

import asyncpg
import structlog

from services.core.store import gauges
from services.relay.outbox_relay import run_relay
from services.relay.settings import RelaySettings
from shared import ops
from shared.kafka import KafkaPublisher, make_producer
from shared.metrics import RELAY
from shared.postgres import create_pool

log = structlog.get_logger()


def relay_ops(pool: asyncpg.Pool, settings: RelaySettings) -> ops.Ops:
    """Ready while it keeps up: the oldest unpublished outbox row is younger than RELAY_READY_MAX_OUTBOX_AGE_SECONDS
    (the database answering is part of that; Kafka away or a stuck relay shows as an ageing outbox)."""

    async def backlog() -> gauges.OutboxBacklog:
        async with pool.acquire() as conn:
            found = await gauges.outbox_backlog(conn)
        RELAY.outbox_depth.set(found.depth)
        RELAY.outbox_oldest_age.set(found.oldest_age_s)
        return found

    async def keeping_up() -> str | None:
        found = await backlog()
        if found.oldest_age_s > settings.ready_max_outbox_age_s:
            return f"the oldest of {found.depth} outbox rows waits since {found.oldest_age_s:.0f}s"
        return None

    async def refresh() -> None:
        await backlog()

    return ops.Ops(RELAY.registry, {"outbox": keeping_up}, refresh)


async def run_relay_service(settings: RelaySettings) -> None:
    # A process of its own: rendering and sending large asset batches must not share an event loop
    # (or a core) with the projection that decides when a run is SUCCESS.
    pool = await create_pool(settings.database_url, max_size=3)
    publisher = KafkaPublisher(lambda: make_producer(settings, client_id="outbox-relay"))
    try:
        async with ops.serving(settings.ops_host, settings.ops_port, relay_ops(pool, settings), "relay", pool):
            log.info("relay_started", batch_max_bytes=settings.batch_max_bytes)
            await run_relay(pool, publisher, settings.batch_limits)
    finally:
        await publisher.reset()
        await pool.close()
