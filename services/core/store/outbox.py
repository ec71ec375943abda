"""Transactional outbox: messages written in the same transaction as the state change they announce."""

from __future__ import annotations

import uuid
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


async def enqueue_run_events(conn: asyncpg.Connection, topic: str, event_ids: Sequence[uuid.UUID]) -> None:
    """Queue accepted run log events by reference; the relay renders their envelope when publishing."""
    await conn.execute(
        "INSERT INTO outbox (topic, key, run_event_position) "
        "SELECT $1, convert_to(e.integration_id::text, 'UTF8'), e.position FROM run_events e "
        "WHERE e.event_id = ANY($2::uuid[]) ORDER BY e.position",
        topic,
        list(event_ids),
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


# The envelope of a referenced run log event, rendered as shared.events serialises it (without `owner`).
_CLAIM = """
SELECT o.id, o.topic, o.key,
       coalesce(o.value, convert_to(json_build_object(
           'envelope_version', 1, 'event_id', e.event_id, 'type', e.type, 'occurred_at', e.occurred_at,
           'integration_id', e.integration_id, 'integration_external_id', i.external_id, 'run_id', e.run_id,
           'seq', e.seq, 'payload', e.payload)::text, 'UTF8')) AS value
FROM outbox o
LEFT JOIN run_events e ON e.position = o.run_event_position
LEFT JOIN integrations i ON i.id = e.integration_id
ORDER BY o.id LIMIT $1
FOR UPDATE OF o SKIP LOCKED
"""


async def claim_batch(conn: asyncpg.Connection, max_rows: int, max_bytes: int) -> list[asyncpg.Record]:
    """Lock the oldest pending messages (call inside a transaction); other relays skip them.

    Stops before the message that would take the batch past `max_bytes` (but takes at least one), so a
    batch of large asset events stays within what the producer sends in one request. `value` is NULL
    for an event whose integration was deleted since: there is nothing left to publish."""
    rows: list[asyncpg.Record] = []
    size = 0
    cursor = await conn.cursor(_CLAIM, max_rows)
    while len(rows) < max_rows:
        # Small chunks: rows fetched past the budget were rendered for nothing (an asset event is MiBs).
        chunk = await cursor.fetch(min(_CLAIM_CHUNK, max_rows - len(rows)))
        for row in chunk:
            size += message_size(row)
            if rows and size > max_bytes:
                return rows
            rows.append(row)
        if len(chunk) < _CLAIM_CHUNK:
            break
    return rows


_CLAIM_CHUNK = 8


def message_size(row: asyncpg.Record) -> int:
    return len(row["key"]) + len(row["value"] or b"")


async def delete(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", list(ids))


async def dead_letter(conn: asyncpg.Connection, failures: Sequence[tuple[int, int, str]]) -> None:
    """Move (id, size in bytes, reason) messages that can never be published to outbox_dead_letters."""
    await conn.executemany(
        """
        WITH moved AS (DELETE FROM outbox WHERE id = $1 RETURNING *)
        INSERT INTO outbox_dead_letters (id, topic, key, value, run_event_position, size_bytes, reason, created_at)
        SELECT id, topic, key, value, run_event_position, $2, $3, created_at FROM moved
        """,
        failures,
    )
