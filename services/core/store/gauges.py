"""SQL for the gauges the database knows, read when /metrics is scraped: each one cheap query."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

_RUNS_BY_STATUS = """
SELECT r.status, i.source, r.trigger, count(*) AS runs
FROM runs r JOIN integrations i ON i.id = r.integration_id
GROUP BY r.status, i.source, r.trigger
"""

# The oldest row by id (the primary key): no scan of the table for its age.
_OUTBOX = """
SELECT (SELECT count(*) FROM outbox) AS depth,
       coalesce(extract(epoch FROM now() - (SELECT created_at FROM outbox ORDER BY id LIMIT 1)), 0) AS oldest_age_s
"""

_CAUGHT_UP_AGE = "SELECT extract(epoch FROM now() - min(caught_up_at)) FROM projector_progress WHERE topic = $1"


@dataclass(frozen=True)
class OutboxBacklog:
    depth: int
    oldest_age_s: float


async def runs_by_status(conn: asyncpg.Connection) -> list[tuple[str, str, str, int]]:
    return [(r["status"], r["source"], r["trigger"], r["runs"]) for r in await conn.fetch(_RUNS_BY_STATUS)]


async def outbox_backlog(conn: asyncpg.Connection) -> OutboxBacklog:
    row = await conn.fetchrow(_OUTBOX)
    assert row is not None
    return OutboxBacklog(depth=row["depth"], oldest_age_s=float(row["oldest_age_s"]))


async def projector_caught_up_age(conn: asyncpg.Connection, topic: str) -> float | None:
    """Seconds since the least caught-up partition of `topic` was last fully applied; None before any was."""
    age = await conn.fetchval(_CAUGHT_UP_AGE, topic)
    return None if age is None else float(age)
