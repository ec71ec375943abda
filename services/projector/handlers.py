"""Applies one fetched batch of connector reports in one Postgres transaction (idempotent)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

import asyncpg
import structlog

from services.core.store import runlog
from shared.events import Envelope, EventType

log = structlog.get_logger()


@dataclass
class BatchOutcome:
    applied: int = 0
    ignored: int = 0
    duplicates: int = 0
    heartbeats: int = 0


_HEARTBEAT = """
INSERT INTO run_heartbeats (run_id, connector_id, last_at)
SELECT r.id, $2, $3 FROM runs r WHERE r.id = $1 AND r.status IN ('QUEUED', 'RUNNING')
ON CONFLICT (run_id) DO UPDATE SET connector_id = EXCLUDED.connector_id,
    last_at = GREATEST(run_heartbeats.last_at, EXCLUDED.last_at)
"""


def parse(values: list[bytes | None]) -> tuple[list[Envelope], int]:
    events: list[Envelope] = []
    unreadable = 0
    for raw in values:
        try:
            events.append(Envelope.from_bytes(raw or b""))
        except ValueError:
            unreadable += 1  # a poison message must not block the partition; it is logged and skipped
    return events, unreadable


async def apply_reports(conn: asyncpg.Connection, events: list[Envelope]) -> BatchOutcome:
    """Group by run (keeping each run's order) and append each run's events to the log."""
    outcome = BatchOutcome()
    by_run: dict[uuid.UUID, list[Envelope]] = defaultdict(list)
    heartbeats: list[tuple[uuid.UUID, str, object]] = []
    for event in events:
        if event.type == EventType.RUN_HEARTBEAT:
            heartbeats.append((event.run_id, str(event.payload.get("connector_id", "")), event.occurred_at))
        else:
            by_run[event.run_id].append(event)
    async with conn.transaction():
        for run_id, run_events in by_run.items():
            result = await runlog.append(conn, run_id, run_events)
            outcome.applied += len(result.applied)
            outcome.duplicates += result.duplicates
            outcome.ignored += len(result.ignored)
            for event, reason in result.ignored:
                log.info("event_ignored", run_id=str(run_id), type=event.type.value, reason=reason)
        if heartbeats:
            await conn.executemany(_HEARTBEAT, heartbeats)
            outcome.heartbeats = len(heartbeats)
    return outcome
