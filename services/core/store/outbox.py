"""Transactional outbox: messages written in the same transaction as the state change they announce."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

NOTIFY_CHANNEL = "outbox"


async def enqueue(conn: asyncpg.Connection, messages: Sequence[tuple[str, str, bytes]]) -> None:
    """Queue (topic, key, value) messages; the relay is woken by NOTIFY when the transaction commits."""
    if not messages:
        return
    await conn.executemany(
        "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
        [(topic, key.encode(), value) for topic, key, value in messages],
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def claim_batch(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Lock the oldest pending messages (call inside a transaction); other relays skip them."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit
    )
    return rows


async def delete(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))
