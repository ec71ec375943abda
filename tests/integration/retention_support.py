"""Runs through the real run log for the retention tests, and the read models they compare."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import asyncpg

from services.core.ingestion import Runtime, SyncRequest, claim_run
from services.core.model import Integration
from services.core.runs import RunState
from services.core.store import runlog
from shared.events import (
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    LineageEdgePayload,
    LineageReported,
    LineageReportedPayload,
    RunLogEvent,
    RunSucceeded,
)
from tests.integration.test_run_log import report, started, succeeded

READ_MODELS = {
    "runs": "id",
    "assets": "integration_id, asset_key",
    "lineage_edges": "id",
    "sync_scopes": "integration_id, scope",
}


def asset(key: str, fingerprint: str = "f1") -> dict[str, Any]:
    return {"key": key, "kind": "table", "name": key.rsplit("/", 1)[-1], "parent_key": "db/s",
            "fingerprint": fingerprint, "attributes": {"comment": f"table {key}"}}  # fmt: skip


def batch(run: RunState, keys: list[str], fingerprint: str = "f1", deleted: tuple[str, ...] = ()) -> RunLogEvent:
    payload = AssetsChangedPayload.model_validate(
        {"upserted": [asset(k, fingerprint) for k in keys], "deleted": list(deleted), "change": "updated"}
    )
    return report(run, AssetsChanged, payload)


def lineage(run: RunState, keys: list[str]) -> RunLogEvent:
    mine = run.integration_id
    edges = [LineageEdgePayload(from_integration_id=mine, from_key=a, to_integration_id=mine, to_key=b)
             for a, b in itertools.pairwise(keys)]  # fmt: skip
    return report(run, LineageReported, LineageReportedPayload(edges=edges))


def outcome(run: RunState, kind: type[RunLogEvent], processed: int) -> RunLogEvent:
    payload = succeeded(processed) if kind is RunSucceeded else FinishedPayload(counts=succeeded(0).counts, message="x")
    return report(run, kind, payload)


async def start(runtime: Runtime, integration: Integration) -> RunState:
    """A run of `integration`, requested and started by connector "c"."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        run = await claim_run(conn, integration, SyncRequest("manual"), at=runtime.clock(), run_id=uuid.uuid4(),
                              task_id=uuid.uuid4())  # fmt: skip
        await runlog.append(conn, run.run_id, [started(run)])
    return run


async def append(runtime: Runtime, run: RunState, events: list[RunLogEvent]) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        await runlog.append(conn, run.run_id, events)


async def crawl(
    runtime: Runtime, integration: Integration, keys: list[str], *, fingerprint: str = "f1",
    deleted: tuple[str, ...] = (), ends: type[RunLogEvent] = RunSucceeded, publish: bool = True,
) -> RunState:  # fmt: skip
    """A whole run: a batch of `keys` (and deletions), lineage between them, its end. `publish`: the relay has
    published its events (their outbox rows are gone, as after Kafka acknowledged them)."""
    run = await start(runtime, integration)
    await append(runtime, run, [batch(run, keys, fingerprint, deleted), lineage(run, keys),
                                outcome(run, ends, len(keys))])  # fmt: skip
    if publish:
        await published(runtime, run)
    return run


async def published(runtime: Runtime, run: RunState) -> None:
    async with runtime.pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM outbox WHERE run_event_position IN (SELECT position FROM run_events WHERE run_id = $1)",
            run.run_id,
        )


async def read_models(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every read model the log feeds (the database is shared: all of them, in key order)."""
    return {table: [dict(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
            for table, key in READ_MODELS.items()}  # fmt: skip


async def events_of(conn: asyncpg.Connection, run: RunState) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT seq, type, payload, summary FROM run_events WHERE run_id = $1 ORDER BY seq",
                            run.run_id)  # fmt: skip
    return [dict(r) for r in rows]


async def compacted(conn: asyncpg.Connection, *runs: RunState) -> list[bool]:
    rows = await conn.fetch("SELECT run_id FROM run_log_compacted_runs WHERE run_id = ANY($1::uuid[])",
                            [r.run_id for r in runs])  # fmt: skip
    found = {r["run_id"] for r in rows}
    return [r.run_id in found for r in runs]
