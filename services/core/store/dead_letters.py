"""SQL for report dead letters: connector reports that could not be parsed or applied, with the reason."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    reason: str
    value: bytes | None
    run_id: uuid.UUID | None = None
    integration_id: uuid.UUID | None = None
    event_id: uuid.UUID | None = None
    type: str | None = None


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: NUL and lone surrogates (which hostile JSON can carry) escaped."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


def _text(value: str | None) -> str | None:
    return storable(value) if value is not None else None


async def record_dead_letters(conn: asyncpg.Connection, letters: list[DeadLetter]) -> int:
    """Record letters (idempotent per topic/partition/offset: a redelivered batch records nothing twice)."""
    await conn.executemany(
        'INSERT INTO report_dead_letters (topic, partition, "offset", run_id, integration_id, event_id, type, '
        "reason, value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        'ON CONFLICT (topic, partition, "offset") DO NOTHING',
        [(d.topic, d.partition, d.offset, d.run_id, d.integration_id, d.event_id, _text(d.type), _text(d.reason),
          d.value) for d in letters],
    )  # fmt: skip
    return len(letters)
