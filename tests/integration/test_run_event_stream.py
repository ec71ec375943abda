"""Stream positions follow commits: a live stream resumed after the last event it saw (Last-Event-ID) never
misses an event whose transaction began first but committed later."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from services.core.store import timeline
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration


async def begin_event(pool: asyncpg.Pool, integration_id: uuid.UUID) -> tuple[asyncpg.Connection, uuid.UUID]:
    """A connection inside a transaction that inserted one run event (not committed yet), and the event's run."""
    conn = await pool.acquire()
    await conn.execute("BEGIN")
    run_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO run_events (run_id, seq, event_id, integration_id, type, occurred_at, payload) "
        "VALUES ($1, 1, $2, $3, 'run.progressed.v1', $4, $5::jsonb)",
        run_id, uuid.uuid4(), integration_id, datetime.now(UTC), json.dumps({"counts": {}}),
    )  # fmt: skip
    return conn, run_id


async def test_an_event_committed_later_comes_after_every_event_seen_before_its_commit(pool, make_integration):
    integration = await make_integration()
    first, first_run = await begin_event(pool, integration.id)  # takes the lower insert position...
    second, second_run = await begin_event(pool, integration.id)
    try:
        await second.execute("COMMIT")  # ...but commits last
        await first.execute("COMMIT")
    finally:
        await pool.release(first)
        await pool.release(second)
    try:
        await check_commit_order(pool, integration.id, first_run, second_run)
    finally:  # runs of one event, no request: not for the other tests' rebuilds of this database
        await pool.execute("DELETE FROM run_events WHERE run_id = ANY($1::uuid[])", [first_run, second_run])


async def check_commit_order(pool: asyncpg.Pool, integration_id: uuid.UUID, first_run: uuid.UUID,
                             second_run: uuid.UUID) -> None:  # fmt: skip
    async with pool.acquire() as conn:
        seen = sorted((e for e in await timeline.visible_events_after(conn, OWNER, 0, 100_000)
                       if e.integration_id == integration_id), key=lambda e: e.position)  # fmt: skip
        assert [e.run_id for e in seen] == [second_run, first_run]  # in commit order
        # A client that saw the second commit's event and resumed after it (Last-Event-ID) still gets the first's.
        resumed = await timeline.visible_events_after(conn, OWNER, seen[0].position, 100_000)
        assert first_run in {e.run_id for e in resumed}


async def test_an_event_deleted_with_its_integration_in_the_same_transaction_is_not_streamed(pool, make_integration):
    # Deleting an integration cancels its active run (an event) and then cascades the run log away, at once.
    integration = await make_integration()
    conn, run_id = await begin_event(pool, integration.id)
    try:
        await conn.execute("DELETE FROM integrations WHERE id = $1", integration.id)
        await conn.execute("COMMIT")
        assert await conn.fetchval("SELECT count(*) FROM run_events WHERE run_id = $1", run_id) == 0
    finally:
        await pool.release(conn)
