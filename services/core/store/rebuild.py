"""Rebuild: recompute the read models (runs, assets, lineage) from the run log, through the same functions
the live projection uses (`services.core.store.runlog`)."""

from __future__ import annotations

import uuid

import asyncpg

from services.core.runs import RunState, evolve
from services.core.store.runlog import RUN_COLUMNS, apply_assets_of_run, run_row
from shared.events import RunSucceeded, run_log_event


async def rebuild(conn: asyncpg.Connection, batch_size: int = 5000) -> int:
    """Recompute every read model from run_events in one transaction. Returns the events replayed."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE run_events IN SHARE MODE")
        # Heartbeats and claims are not in the log; keep them, or the reaper would take running runs for dead
        # ones (run_claims has no foreign key to runs, so TRUNCATE leaves it alone).
        await conn.execute("CREATE TEMP TABLE kept_heartbeats ON COMMIT DROP AS SELECT * FROM run_heartbeats")
        await conn.execute("TRUNCATE runs CASCADE")
        await conn.execute("DELETE FROM assets")
        await conn.execute("DELETE FROM sync_scopes")
        await conn.execute("DELETE FROM lineage_edges")
        states: dict[uuid.UUID, RunState] = {}
        replayed = 0
        cursor = conn.cursor(
            "SELECT e.*, i.external_id FROM run_events e JOIN integrations i ON i.id = e.integration_id "
            "ORDER BY e.position",
            prefetch=batch_size,
        )
        finished: list[RunState] = []
        async for row in cursor:
            event = run_log_event({
                "event_id": row["event_id"], "type": row["type"], "occurred_at": row["occurred_at"],
                "integration_id": row["integration_id"], "integration_external_id": row["external_id"],
                "run_id": row["run_id"], "seq": row["seq"], "payload": row["payload"],
            })  # fmt: skip
            state = evolve(states.get(event.run_id), event)
            replayed += 1
            if isinstance(event, RunSucceeded):
                await apply_assets_of_run(conn, state, event)
            if state.status.is_terminal:
                states.pop(state.run_id, None)
                finished.append(state)
                if len(finished) >= batch_size:
                    await _flush(conn, finished)
            else:
                states[state.run_id] = state
        finished.extend(states.values())
        await _flush(conn, finished)
        await conn.execute(
            "INSERT INTO run_heartbeats SELECT k.* FROM kept_heartbeats k "
            "JOIN runs r ON r.id = k.run_id AND r.status IN ('QUEUED', 'RUNNING')"
        )
        return replayed


async def _flush(conn: asyncpg.Connection, states: list[RunState]) -> None:
    if states:
        await conn.copy_records_to_table("runs", records=[run_row(s) for s in states], columns=RUN_COLUMNS)
        states.clear()
