"""The outbox relay: publishes committed outbox rows to Kafka, then deletes them (at-least-once)."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.core.store import outbox

log = structlog.get_logger()


async def relay_once(pool: asyncpg.Pool, producer: AIOKafkaProducer, batch_size: int = 500) -> int:
    """Publish one batch. Rows are deleted only after Kafka acknowledged every message in it."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await outbox.claim_batch(conn, batch_size)
        if not rows:
            return 0
        futures = [
            await producer.send(r["topic"], bytes(r["value"]), key=bytes(r["key"]))
            for r in rows
            if r["value"] is not None
        ]
        await asyncio.gather(*futures)
        await outbox.delete(conn, [r["id"] for r in rows])
    return len(rows)


async def run_relay(pool: asyncpg.Pool, producer: AIOKafkaProducer, poll_interval_s: float = 1.0) -> None:
    wake = asyncio.Event()

    def on_notify(*_: object) -> None:
        wake.set()

    listener = await pool.acquire()
    await listener.add_listener(outbox.NOTIFY_CHANNEL, on_notify)
    try:
        while True:
            wake.clear()
            try:
                published = await relay_once(pool, producer)
            except (KafkaError, OSError, asyncpg.PostgresError) as error:
                log.warning("outbox_relay_retry", error=str(error))
                await asyncio.sleep(1.0)
                continue
            if published:
                continue  # more may be waiting
            try:
                await asyncio.wait_for(wake.wait(), timeout=poll_interval_s)
            except TimeoutError:
                pass
    finally:
        await listener.remove_listener(outbox.NOTIFY_CHANNEL, on_notify)
        await pool.release(listener)
