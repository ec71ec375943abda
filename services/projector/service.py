"""The projector's consumer loop: fetch reports, apply them in one transaction, then commit offsets."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.projector.handlers import apply_reports, parse
from shared.events import Envelope

log = structlog.get_logger()


CAUGHT_UP_EVERY_S = 1.0


async def run_projection(pool: asyncpg.Pool, consumer: AIOKafkaConsumer) -> None:
    marked = 0.0
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=2000)
        if time.monotonic() - marked >= CAUGHT_UP_EVERY_S and await _caught_up(consumer):
            await _mark_caught_up(pool)
            marked = time.monotonic()
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


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    """True when every assigned partition has been read up to its high watermark."""
    assignment = consumer.assignment()
    if not assignment:
        return False
    for tp in assignment:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def _mark_caught_up(pool: asyncpg.Pool) -> None:
    try:
        await pool.execute(
            "INSERT INTO projector_status (id, caught_up_at) VALUES (1, now()) "
            "ON CONFLICT (id) DO UPDATE SET caught_up_at = GREATEST(projector_status.caught_up_at, now())"
        )
    except (asyncpg.PostgresError, OSError) as error:
        log.warning("caught_up_mark_failed", error=str(error))


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
