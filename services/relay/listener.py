"""Wakes the relay when a transaction that queued messages commits (NOTIFY), across database restarts."""

from __future__ import annotations

import asyncio

import asyncpg

from services.core.store import outbox
from shared.postgres import listen_forever


async def listen_for_commits(pool: asyncpg.Pool, wake: asyncio.Event, reconnect_after_s: float = 1.0) -> None:
    """Wake the relay on every commit that queued messages, and after every (re)connect: whatever committed
    while nobody listened is published then (the relay also polls in between)."""
    await listen_forever(pool, outbox.NOTIFY_CHANNEL, lambda _: wake.set(), wake.set, reconnect_after_s)
