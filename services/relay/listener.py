"""Wakes the relay when a transaction that queued messages commits (NOTIFY), across database restarts."""

from __future__ import annotations

import asyncio

import asyncpg
import structlog

from services.core.store import outbox

log = structlog.get_logger()


async def listen_for_commits(pool: asyncpg.Pool, wake: asyncio.Event, reconnect_after_s: float = 1.0) -> None:
    """Hold a LISTEN connection; when it is lost, open another (the relay polls in between).

    Runs until cancelled; anything but a lost connection is a defect and ends it (its supervisor then
    takes the process down)."""
    while True:
        try:
            await _listen_until_lost(pool, wake)
            log.warning("outbox_listener_lost", error="the database closed the connection")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("outbox_listener_lost", error=str(error))
        await asyncio.sleep(reconnect_after_s)


async def _listen_until_lost(pool: asyncpg.Pool, wake: asyncio.Event) -> None:
    lost = asyncio.Event()

    def on_lost(_: object) -> None:
        lost.set()

    def on_notify(*_: object) -> None:
        wake.set()

    async with pool.acquire() as conn:
        conn.add_termination_listener(on_lost)
        await conn.add_listener(outbox.NOTIFY_CHANNEL, on_notify)
        wake.set()  # whatever committed while nobody listened
        try:
            await lost.wait()
        finally:
            conn.remove_termination_listener(on_lost)
            if not conn.is_closed():
                await conn.remove_listener(outbox.NOTIFY_CHANNEL, on_notify)
