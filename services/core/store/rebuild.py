"""Rebuild: recompute the read models (runs, assets, lineage, sync scopes) as the latest snapshot of them plus the
run log after it, through the same functions the live projection uses (`services.core.store.runlog`).

The replay is batched: events are read a batch at a time in stream order (the order their transactions committed,
which is the order the live projection applied them), with the asset and lineage batches' payloads left in the
database (`evolve` does not read them; a successful run's merge reads them there, set-based); the states of the runs
a batch continues are loaded in one query; the runs that succeeded in a batch are merged together, a statement for
many runs (`apply_assets_of_runs`: the runs of distinct integrations at once, an integration's runs in the order they
succeeded); finished runs are written with COPY."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from services.core.errors import Conflict
from services.core.runs import RunState, evolve
from services.core.store import snapshots
from services.core.store.compaction import BULK_TYPES
from services.core.store.runlog import RUN_COLUMNS, apply_assets_of_runs, run_row, state_from_row
from shared.events import RunSucceeded, run_log_event

log = structlog.get_logger()

_TAIL = """
SELECT e.run_id, e.seq, e.event_id, e.type, e.occurred_at, e.integration_id, i.external_id,
       CASE WHEN e.type = ANY($2::text[]) THEN '{}'::jsonb ELSE e.payload END AS payload
FROM run_event_stream s JOIN run_events e ON e.position = s.position JOIN integrations i ON i.id = e.integration_id
WHERE s.stream_position > $1
ORDER BY s.stream_position
"""

_STATES = """
SELECT r.*, i.external_id AS integration_external_id
FROM runs r JOIN integrations i ON i.id = r.integration_id
WHERE r.id = ANY($1::uuid[])
"""


@dataclass
class _Replay:
    """The runs a replay has touched and not written yet."""

    active: dict[uuid.UUID, RunState]
    finished: list[RunState]
    loaded: set[uuid.UUID]  # runs whose snapshot state was looked up (it may not exist: requested in the tail)


async def rebuild(conn: asyncpg.Connection, batch_size: int = 5000, *, from_snapshot: bool = True) -> int:
    """Recompute every read model in one transaction: the latest snapshot, then the events after it. Returns the
    events replayed. `from_snapshot=False` replays the whole log, which only a log that was never compacted holds."""
    async with conn.transaction():
        # A compaction waits (the snapshot is read here), and so do appends (their read models would be overwritten).
        # Taken in a compaction's order (its lock, then run_events when it updates batches), so the two never
        # deadlock.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", snapshots.MAINTENANCE_LOCK)
        await conn.execute("LOCK TABLE run_events IN SHARE MODE")
        if not from_snapshot and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM run_log_compacted_runs)"):
            raise Conflict("The run log was compacted: only its latest snapshot and the events after it rebuild it.")
        # Heartbeats and claims are not in the log; keep them, or the reaper would take running runs for dead
        # ones (run_claims has no foreign key to runs, so TRUNCATE leaves it alone).
        await conn.execute("CREATE TEMP TABLE kept_heartbeats ON COMMIT DROP AS SELECT * FROM run_heartbeats")
        await conn.execute("TRUNCATE runs, assets, sync_scopes, lineage_edges CASCADE")
        # The replay's statements run thousands of times while the tables they read grow from empty: a plan cached
        # early (a sequential scan of a table then empty) made a 40,000-event replay 8x slower. Planned each time,
        # they see each table's current size.
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        started = time.perf_counter()
        snapshot = await snapshots.restore(conn) if from_snapshot else None
        restored = time.perf_counter()
        replayed = await _replay(conn, snapshot.stream_position if snapshot else 0, batch_size)
        log.info("read_models_rebuilt", snapshot_id=snapshot.id if snapshot else None, replayed=replayed,
                 restore_s=round(restored - started, 3), replay_s=round(time.perf_counter() - restored, 3))  # fmt: skip
        await conn.execute(
            "INSERT INTO run_heartbeats SELECT k.* FROM kept_heartbeats k "
            "JOIN runs r ON r.id = k.run_id AND r.status IN ('QUEUED', 'RUNNING')"
        )
        return replayed


async def _replay(conn: asyncpg.Connection, after: int, batch_size: int) -> int:
    replay = _Replay({}, [], set())
    replayed = 0
    cursor = await conn.cursor(_TAIL, after, BULK_TYPES)
    while rows := await cursor.fetch(batch_size):
        await _load_states(conn, replay, {r["run_id"] for r in rows} - replay.loaded)
        succeeded: list[tuple[RunState, RunSucceeded]] = []
        for row in rows:
            event = run_log_event({
                "event_id": row["event_id"], "type": row["type"], "occurred_at": row["occurred_at"],
                "integration_id": row["integration_id"], "integration_external_id": row["external_id"],
                "run_id": row["run_id"], "seq": row["seq"], "payload": row["payload"],
            })  # fmt: skip
            state = evolve(replay.active.pop(event.run_id, None), event)
            if isinstance(event, RunSucceeded):
                succeeded.append((state, event))  # evolve reads no read model: merged once the batch is read
            if state.status.is_terminal:
                replay.finished.append(state)
            else:
                replay.active[state.run_id] = state
        for runs in _rounds(succeeded):
            await apply_assets_of_runs(conn, runs)
        replayed += len(rows)
        if len(replay.finished) >= batch_size:
            await _write(conn, replay.finished)
    # Finished runs first: a run that ended frees its integration's one active slot for the run after it.
    await _write(conn, replay.finished)
    await _write(conn, list(replay.active.values()))
    return replayed


def _rounds(succeeded: list[tuple[RunState, RunSucceeded]]) -> list[list[tuple[RunState, RunSucceeded]]]:
    """Successful runs (in the order they succeeded) as rounds of runs of distinct integrations: round k holds each
    integration's k-th run, so each integration's runs are merged in order (other integrations' do not interact)."""
    rounds: list[list[tuple[RunState, RunSucceeded]]] = []
    seen: dict[uuid.UUID, int] = {}
    for state, event in succeeded:
        k = seen.get(state.integration_id, 0)
        seen[state.integration_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append((state, event))
    return rounds


async def _load_states(conn: asyncpg.Connection, replay: _Replay, run_ids: set[uuid.UUID]) -> None:
    """The snapshot's state of runs the batch continues (none for runs requested after the snapshot)."""
    if run_ids:
        replay.loaded |= run_ids
        for row in await conn.fetch(_STATES, list(run_ids)):
            replay.active[row["id"]] = state_from_row(row)


async def _write(conn: asyncpg.Connection, states: list[RunState]) -> None:
    """Replace the rows of these runs (restored from the snapshot or not there yet) with their replayed state."""
    if states:
        await conn.execute("DELETE FROM runs WHERE id = ANY($1::uuid[])", [s.run_id for s in states])
        await conn.copy_records_to_table("runs", records=[run_row(s) for s in states], columns=RUN_COLUMNS)
        states.clear()
