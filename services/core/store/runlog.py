"""The event-sourced run log in Postgres and its projections.

`append` is the only way a run changes: inside the caller's transaction it deduplicates events by
`event_id`, applies the pure `evolve`, records accepted events with their per-run `seq`, records
rejected ones as ignored, writes the `runs` read model, applies side effects (assets on success)
and queues each accepted event in the outbox for the public RUN_EVENTS topic. `rebuild.rebuild`
replays the whole log through the same functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from services.core.errors import TransitionRejected
from services.core.runs import AssetCounts, RunState, RunStatus, evolve
from services.core.store import outbox
from shared import topics
from shared.events import RunLogEvent, RunOwner, RunSucceeded

RUN_COLUMNS = (
    "id", "integration_id", "status", "trigger", "requested_at", "started_at", "completed_at", "message",
    "assets_processed", "assets_created", "assets_updated", "assets_deleted", "cancel_requested", "version",
    "connector_id", "attempt", "kind", "task_id", "scope", "force_recursive", "created_by", "canceled_by",
    "updated_at", "upload_id",
)  # fmt: skip

_UPSERT_RUN = f"""
INSERT INTO runs ({", ".join(RUN_COLUMNS)})
VALUES ({", ".join(f"${i}" for i in range(1, len(RUN_COLUMNS) + 1))})
ON CONFLICT (id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in RUN_COLUMNS[2:])}
"""

_SELECT_STATE = """
SELECT r.*, i.external_id AS integration_external_id
FROM runs r JOIN integrations i ON i.id = r.integration_id
WHERE r.id = $1
"""


@dataclass
class AppendResult:
    state: RunState | None
    applied: list[RunLogEvent] = field(default_factory=list)
    ignored: list[tuple[RunLogEvent, str]] = field(default_factory=list)
    duplicates: int = 0


def state_from_row(row: asyncpg.Record) -> RunState:
    return RunState(
        run_id=row["id"],
        integration_id=row["integration_id"],
        integration_external_id=row["integration_external_id"],
        status=RunStatus(row["status"]),
        trigger=row["trigger"],
        requested_at=row["requested_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        message=row["message"],
        counts=AssetCounts(
            row["assets_processed"], row["assets_created"], row["assets_updated"], row["assets_deleted"]
        ),
        cancel_requested=row["cancel_requested"],
        version=row["version"],
        owner=RunOwner(connector_id=row["connector_id"], attempt=row["attempt"]) if row["connector_id"] else None,
        kind=row["kind"],
        task_id=row["task_id"],
        scope=row["scope"],
        force_recursive=row["force_recursive"],
        created_by=row["created_by"],
        canceled_by=row["canceled_by"],
        updated_at=row["updated_at"],
        upload_id=row["upload_id"],
    )


def run_row(s: RunState) -> tuple[object, ...]:
    c, o = s.counts, s.owner
    return (
        s.run_id, s.integration_id, s.status.value, s.trigger, s.requested_at, s.started_at, s.completed_at,
        s.message, c.processed, c.created, c.updated, c.deleted, s.cancel_requested, s.version,
        o.connector_id if o else None, o.attempt if o else None, s.kind, s.task_id, s.scope, s.force_recursive,
        s.created_by, s.canceled_by, s.updated_at, s.upload_id,
    )  # fmt: skip


async def load_state(conn: asyncpg.Connection, run_id: uuid.UUID, *, lock: bool = False) -> RunState | None:
    row = await conn.fetchrow(_SELECT_STATE + (" FOR UPDATE OF r" if lock else ""), run_id)
    return state_from_row(row) if row else None


async def append(
    conn: asyncpg.Connection,
    run_id: uuid.UUID,
    events: Sequence[RunLogEvent],
    payload_json: Mapping[uuid.UUID, bytes] | None = None,
) -> AppendResult:
    """Apply `events` (all for `run_id`, in order) inside the caller's transaction. Idempotent.

    `payload_json` (by event_id) is an event's payload as received, stored as it is: a report whose payload was
    validated without building it (shared.events.parse_report_for_log) has it there only."""
    state = await load_state(conn, run_id, lock=True)
    seen = {
        r["event_id"]
        for r in await conn.fetch(
            "SELECT event_id FROM run_events WHERE event_id = ANY($1::uuid[]) "
            "UNION ALL SELECT event_id FROM run_events_ignored WHERE event_id = ANY($1::uuid[])",
            [e.event_id for e in events],
        )
    }
    result = AppendResult(state=state)
    for event in events:
        if event.event_id in seen:
            result.duplicates += 1
            continue
        seen.add(event.event_id)
        try:
            new_state = evolve(result.state, event)
        except TransitionRejected as rejected:
            result.ignored.append((event, rejected.detail))
            continue
        result.applied.append(event.model_copy(update={"seq": new_state.version}))
        result.state = new_state
    if result.applied:
        assert result.state is not None
        await _record_applied(conn, result.applied, payload_json or {})
        await conn.execute(_UPSERT_RUN, *run_row(result.state))
        await _apply_side_effects(conn, result.state, result.applied)
        await outbox.enqueue_run_events(conn, topics.RUN_EVENTS, [e.event_id for e in result.applied])
    if result.ignored:
        await conn.executemany(
            "INSERT INTO run_events_ignored (event_id, run_id, integration_id, type, occurred_at, reason) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            [(e.event_id, e.run_id, e.integration_id, e.type, e.occurred_at, why) for e, why in result.ignored],
        )
    return result


async def _record_applied(
    conn: asyncpg.Connection, applied: list[RunLogEvent], payload_json: Mapping[uuid.UUID, bytes]
) -> None:
    # The payload's JSON goes to the server as text, cast there (never parsed again in Python).
    def payload(event: RunLogEvent) -> str:
        received = payload_json.get(event.event_id)
        return received.decode() if received is not None else event.payload.model_dump_json()

    await conn.executemany(
        "INSERT INTO run_events (run_id, seq, event_id, integration_id, type, occurred_at, payload) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)",
        [(e.run_id, e.seq, e.event_id, e.integration_id, e.type, e.occurred_at, payload(e)) for e in applied],
    )


async def _apply_side_effects(conn: asyncpg.Connection, state: RunState, applied: list[RunLogEvent]) -> None:
    for event in applied:
        if isinstance(event, RunSucceeded):
            await apply_assets_of_run(conn, state, event)
            if state.kind == "sync":
                await maintain_object_settings(conn, state.run_id, state.integration_id, event.occurred_at)
    if state.status.is_terminal:
        await conn.execute("DELETE FROM run_heartbeats WHERE run_id = $1", state.run_id)
        await conn.execute("DELETE FROM run_claims WHERE run_id = $1", state.run_id)


# The merge statements take the runs to merge as arrays, at most one run per integration (a rebuild merges the runs
# of distinct integrations that succeeded in one batch of the log together; the live projection one run at a time):
# `_RUNS` names them r(run_id, integration_id, at).
_RUNS = "unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS r(run_id, integration_id, at)"

# Each run's events by primary key, whatever the statistics say (OFFSET 0 keeps the subquery apart: joined, the planner
# may read all of run_events once per merge).
_EVENTS_OF_RUN = (
    "(SELECT e.seq, e.payload FROM run_events e WHERE e.run_id = r.run_id AND e.type = '{type}' OFFSET 0) e"
)


def _batch(array: str) -> str:
    """A batch's array, or NULL (no rows) where compaction left its count: the planner may expand events' payloads
    before it joins them to the runs merged, compacted runs' included."""
    return f"CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} END"


_UPSERT_ASSETS = f"""
INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes,
                    created_run_id, updated_run_id, created_at, updated_at)
SELECT DISTINCT ON (r.integration_id, a.key) r.integration_id, a.key, a.kind, a.name, a.parent_key, a.fingerprint,
       coalesce(a.attributes, '{{}}'::jsonb), r.run_id, r.run_id, r.at, r.at
FROM {_RUNS}
CROSS JOIN LATERAL {_EVENTS_OF_RUN.format(type="run.assets_changed.v1")}
CROSS JOIN LATERAL jsonb_to_recordset({_batch("e.payload -> 'upserted'")})
     AS a(key text, kind text, name text, parent_key text, fingerprint text, attributes jsonb)
ORDER BY r.integration_id, a.key, e.seq DESC
ON CONFLICT (integration_id, asset_key) DO UPDATE SET
    kind = EXCLUDED.kind, name = EXCLUDED.name, parent_key = EXCLUDED.parent_key,
    fingerprint = EXCLUDED.fingerprint, attributes = EXCLUDED.attributes,
    created_run_id = CASE WHEN assets.deleted_at IS NULL THEN assets.created_run_id
                          ELSE EXCLUDED.created_run_id END,
    created_at = CASE WHEN assets.deleted_at IS NULL THEN assets.created_at ELSE EXCLUDED.created_at END,
    updated_run_id = EXCLUDED.updated_run_id, updated_at = EXCLUDED.updated_at, deleted_run_id = NULL,
    deleted_at = NULL
"""

# The deleted keys are gathered first (a CTE, evaluated once); joining the jsonb set directly made the planner re-read
# every payload per asset row (quadratic on a 40k-asset first run). Each key is then one primary-key probe.
_DELETE_ASSETS = f"""
WITH gone AS MATERIALIZED (
    SELECT DISTINCT r.run_id, r.integration_id, r.at, k.key
    FROM {_RUNS}
    CROSS JOIN LATERAL {_EVENTS_OF_RUN.format(type="run.assets_changed.v1")}
    CROSS JOIN LATERAL jsonb_array_elements_text({_batch("e.payload -> 'deleted'")}) AS k(key))
UPDATE assets SET deleted_run_id = gone.run_id, deleted_at = gone.at
FROM gone
WHERE assets.integration_id = gone.integration_id AND assets.asset_key = gone.key AND assets.deleted_at IS NULL
"""


_SYNCED_SCOPE = """
INSERT INTO sync_scopes (integration_id, scope, synced_at, forced_at)
SELECT s.integration_id, s.scope, s.at, CASE WHEN s.forced THEN s.at END
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bool[]) AS s(integration_id, scope, at, forced)
ON CONFLICT (integration_id, scope) DO UPDATE SET synced_at = greatest(sync_scopes.synced_at, EXCLUDED.synced_at),
    forced_at = greatest(sync_scopes.forced_at, EXCLUDED.forced_at)
"""


# The edges a full sync asserts replace the integration's: kept ones keep their created_at (and so their place
# in listings), the ones it no longer reports go.
_UPSERT_LINEAGE = f"""
INSERT INTO lineage_edges (integration_id, from_integration_id, from_key, to_integration_id, to_key, run_id,
                           created_at, updated_at)
SELECT DISTINCT r.integration_id, l.from_integration_id, l.from_key, l.to_integration_id, l.to_key, r.run_id,
       r.at, r.at
FROM {_RUNS}
CROSS JOIN LATERAL {_EVENTS_OF_RUN.format(type="run.lineage_reported.v1")}
CROSS JOIN LATERAL jsonb_to_recordset({_batch("e.payload -> 'edges'")})
     AS l(from_integration_id uuid, from_key text, to_integration_id uuid, to_key text)
ON CONFLICT (id) DO UPDATE SET run_id = EXCLUDED.run_id
"""

_DROP_UNASSERTED_LINEAGE = f"""
DELETE FROM lineage_edges l USING {_RUNS}
WHERE l.integration_id = r.integration_id AND l.run_id <> r.run_id
"""


async def apply_assets_of_run(conn: asyncpg.Connection, state: RunState, succeeded: RunSucceeded) -> None:
    """Merge a successful run's asset changes and lineage (staged in the log) into the read models, set-based."""
    await apply_assets_of_runs(conn, [(state, succeeded)])


async def apply_assets_of_runs(conn: asyncpg.Connection, runs: Sequence[tuple[RunState, RunSucceeded]]) -> None:
    """`apply_assets_of_run` for successful runs of distinct integrations at once: the same statements, each run
    once, whatever the number of runs."""
    if len({state.integration_id for state, _ in runs}) < len(runs):
        raise ValueError("runs of one integration must be merged one after the other, in the order they succeeded")

    def arrays(chosen: list[tuple[RunState, RunSucceeded]]) -> tuple[list[uuid.UUID], list[uuid.UUID], list[datetime]]:
        return [s.run_id for s, _ in chosen], [s.integration_id for s, _ in chosen], [e.occurred_at for _, e in chosen]

    syncs = [(state, event) for state, event in runs if state.kind == "sync"]
    removals = [(state, event) for state, event in runs if state.kind in ("sync", "delete")]
    full_syncs = [(state, event) for state, event in syncs if not state.scope]  # a partial sync leaves the lineage
    if syncs:
        await conn.execute("SET LOCAL work_mem = '64MB'")  # the merge sorts every changed asset once
        await conn.execute(_UPSERT_ASSETS, *arrays(syncs))
    if removals:
        await conn.execute(_DELETE_ASSETS, *arrays(removals))
    if syncs:
        await conn.execute(_SYNCED_SCOPE, [s.integration_id for s, _ in syncs], [s.scope or "" for s, _ in syncs],
                           [e.occurred_at for _, e in syncs], [s.force_recursive for s, _ in syncs])  # fmt: skip
    if full_syncs:
        await conn.execute(_UPSERT_LINEAGE, *arrays(full_syncs))
        await conn.execute(_DROP_UNASSERTED_LINEAGE, *arrays(full_syncs))


# Objects a sync found for the first time under a parent whose effective activateNewChildren is false are
# registered inactive: they get an isActive=false override of their own (settings are configuration, so this
# happens when the run succeeds, never again on rebuild).
_REGISTER_INACTIVE = """
INSERT INTO object_settings (integration_id, object_key, is_active, updated_at, updated_by)
SELECT a.integration_id, a.asset_key, false, $3, NULL
FROM assets a
WHERE a.integration_id = $2 AND a.created_run_id = $1 AND a.kind <> 'column' AND a.deleted_at IS NULL
  AND (SELECT s.activate_new_children FROM object_settings s
       WHERE s.integration_id = $2 AND s.activate_new_children IS NOT NULL
         AND (s.object_key = '' OR a.parent_key = s.object_key OR starts_with(a.parent_key, s.object_key || '/'))
       ORDER BY length(s.object_key) DESC LIMIT 1) = false
ON CONFLICT (integration_id, object_key) DO UPDATE SET is_active = coalesce(object_settings.is_active, false)
"""


async def maintain_object_settings(conn: asyncpg.Connection, run_id: uuid.UUID, integration_id: uuid.UUID,
                                   at: datetime) -> None:  # fmt: skip
    """After a successful sync: settings of objects it found gone go with them (an object found again starts
    afresh), and objects it found under a parent holding back new children are registered inactive. Settings are
    configuration: this happens when the run succeeds, never on rebuild. One indexed query when the integration has
    no settings at all (the common case): nothing else runs on the hot path of every sync."""
    holds_back = await conn.fetchval(
        "SELECT bool_or(NOT coalesce(activate_new_children, true)) FROM object_settings WHERE integration_id = $1",
        integration_id,
    )
    if holds_back is None:  # no settings
        return
    # Driven by the (few) settings rows: each probes the assets primary key.
    await conn.execute(
        "DELETE FROM object_settings s WHERE s.integration_id = $2 AND EXISTS (SELECT 1 FROM assets a "
        "WHERE a.integration_id = $2 AND a.asset_key = s.object_key AND a.deleted_run_id = $1 AND a.kind <> 'column')",
        run_id, integration_id,
    )  # fmt: skip
    if holds_back:
        await conn.execute(_REGISTER_INACTIVE, run_id, integration_id, at)
