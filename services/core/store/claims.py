"""SQL for run claims: which connector instance executes a run, decided synchronously before it starts.

The run log learns who started a run only when the projector applies run.started.v1, which may be
seconds later. Two instances that both received a run's request (a rebalance redelivers uncommitted
requests) must not both crawl it, so the start is gated here, by one atomic statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

# A run can be claimed once, while it is QUEUED and not being cancelled. Claiming again as the same
# instance returns the same attempt: a retry after a lost answer must not disown a claim that committed.
# The attempt is part of the fencing token every report carries; today every run has exactly one.
_CLAIM = """
INSERT INTO run_claims (run_id, connector_id, attempt, claimed_at)
SELECT r.id, $2, 1, $3 FROM runs r WHERE r.id = $1 AND r.status = 'QUEUED' AND NOT r.cancel_requested
FOR SHARE OF r  -- waits for a cancel or reap of this run in flight, then sees its outcome
ON CONFLICT (run_id) DO UPDATE SET claimed_at = run_claims.claimed_at
    WHERE run_claims.connector_id = EXCLUDED.connector_id
RETURNING attempt
"""


async def claim(conn: asyncpg.Connection, run_id: uuid.UUID, connector_id: str, at: datetime) -> int | None:
    """The attempt number if this connector now owns the run, None if it is not to be started here."""
    attempt: int | None = await conn.fetchval(_CLAIM, run_id, connector_id, at)
    return attempt
