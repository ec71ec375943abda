"""The projector's consumer loop: fetch reports, apply them in one transaction, then commit offsets."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.projector.handlers import apply_reports, parse
from shared.events import Envelope

log = structlog.get_logger()


async def run_projection(pool: asyncpg.Pool, consumer: AIOKafkaConsumer) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=2000)
        if not batches:
            continue
        values = [m.value for messages in batches.values() for m in messages]
        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items()}
        events, unreadable = parse(values)
        if unreadable:
            log.error("reports_unreadable", count=unreadable)
        await _apply_until_done(pool, events)
        # Only now is the work durable: commit offsets after the DB transaction committed.
        await consumer.commit(offsets)


async def _apply_until_done(pool: asyncpg.Pool, events: list[Envelope]) -> None:
    delay = 0.5
    while True:
        try:
            async with pool.acquire() as conn:
                outcome = await apply_reports(conn, events)
            if outcome.ignored or outcome.duplicates:
                log.info("reports_applied", applied=outcome.applied, ignored=outcome.ignored,
                         duplicates=outcome.duplicates)  # fmt: skip
            return
        except (asyncpg.PostgresError, OSError) as error:
            # Retriable: the same batch is applied again; the log deduplicates what already landed.
            log.warning("reports_apply_retry", error=str(error), delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
