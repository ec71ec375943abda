"""Wires the relay process: a pool (with one LISTEN connection) and an idempotent producer."""

from __future__ import annotations

import structlog

from services.relay.outbox_relay import run_relay
from shared.kafka import make_producer
from shared.postgres import create_pool
from shared.settings import CommonSettings

log = structlog.get_logger()


async def run_relay_service(settings: CommonSettings) -> None:
    # A process of its own: rendering and sending large asset batches must not share an event loop
    # (or a core) with the projection that decides when a run is SUCCESS.
    pool = await create_pool(settings.database_url, max_size=3)
    producer = make_producer(settings, client_id="outbox-relay")
    try:
        await producer.start()
        log.info("relay_started")
        await run_relay(pool, producer)
    finally:
        await producer.stop()
        await pool.close()
