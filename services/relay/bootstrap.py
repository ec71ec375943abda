"""Wires the relay process: a pool (with one LISTEN connection) and a publisher (an idempotent producer)."""

from __future__ import annotations

import structlog

from services.relay.outbox_relay import run_relay
from services.relay.settings import RelaySettings
from shared.kafka import KafkaPublisher, make_producer
from shared.postgres import create_pool

log = structlog.get_logger()


async def run_relay_service(settings: RelaySettings) -> None:
    # A process of its own: rendering and sending large asset batches must not share an event loop
    # (or a core) with the projection that decides when a run is SUCCESS.
    pool = await create_pool(settings.database_url, max_size=3)
    publisher = KafkaPublisher(lambda: make_producer(settings, client_id="outbox-relay"))
    try:
        log.info("relay_started", batch_max_bytes=settings.batch_max_bytes)
        await run_relay(pool, publisher, settings.batch_limits)
    finally:
        await publisher.reset()
        await pool.close()
