"""Application functions for runs: trigger, cancel, read. Every API dialect and the scheduler call these."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.core.errors import AlreadyRunning, Forbidden, NotFound
from services.core.model import Integration, Principal
from services.core.runs import CancelRun, RequestRun, RunState, RunStatus, decide
from services.core.store import integrations as integration_store
from services.core.store import outbox, run_reads, runlog
from shared import topics
from shared.events import CancelRunCommand, CancelRunPayload, StartRunCommand, StartRunPayload

Clock = Callable[[], datetime]
IdFactory = Callable[[], uuid.UUID]

ACTIVE_RUN_CONSTRAINT = "runs_one_active_per_integration"


@dataclass(frozen=True)
class Runtime:
    """What application functions need from the outside world, built once in each service's bootstrap."""

    pool: asyncpg.Pool
    clock: Clock
    new_id: IdFactory


async def visible_integration(conn: asyncpg.Connection, principal: Principal, external_id: str) -> Integration:
    integration = await integration_store.get_by_external_id(conn, external_id)
    if integration is None or not principal.can_view(integration.owning_team_id):
        raise NotFound(f"Integration '{external_id}' was not found, or this API key cannot see it.")
    return integration


async def editable_integration(conn: asyncpg.Connection, principal: Principal, external_id: str) -> Integration:
    integration = await visible_integration(conn, principal, external_id)
    if not principal.can_edit(integration.owning_team_id):
        needed = (
            f"INGESTION_EDIT on team '{integration.owning_team_external_id}'"
            if integration.owning_team_id
            else "organization-owner privileges (the integration has no owning team)"
        )
        raise Forbidden(f"This API key lacks {needed}.")
    return integration


async def claim_run(
    conn: asyncpg.Connection,
    integration: Integration,
    *,
    trigger: str,
    requested_by: str | None,
    at: datetime,
    run_id: uuid.UUID,
) -> RunState:
    """Atomically create the integration's one active run and queue its start command (outbox)."""
    command = RequestRun(run_id, integration.id, integration.external_id, trigger, requested_by, at)
    events = decide(None, command)
    start = StartRunCommand(
        occurred_at=at,
        integration_id=integration.id,
        integration_external_id=integration.external_id,
        run_id=run_id,
        payload=StartRunPayload(source=integration.source.value),
    )
    try:
        async with conn.transaction():  # a savepoint when the caller already holds a transaction
            result = await runlog.append(conn, run_id, events)
            await outbox.enqueue(conn, [(topics.RUN_REQUESTS, str(integration.id), start.to_bytes())])
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != ACTIVE_RUN_CONSTRAINT:
            raise
        raise AlreadyRunning(f"A run is already in progress for integration '{integration.external_id}'.") from None
    assert result.state is not None
    return result.state


async def trigger_run(rt: Runtime, principal: Principal, external_id: str) -> RunState:
    async with rt.pool.acquire() as conn, conn.transaction():
        integration = await editable_integration(conn, principal, external_id)
        return await claim_run(
            conn, integration, trigger="manual", requested_by=principal.name, at=rt.clock(), run_id=rt.new_id()
        )


async def cancel_run(rt: Runtime, principal: Principal, external_id: str) -> RunState | None:
    """Request cancellation of the active run, if any. Idempotent: no active run is not an error."""
    async with rt.pool.acquire() as conn, conn.transaction():
        integration = await editable_integration(conn, principal, external_id)
        active = await run_reads.active_run(conn, integration.id)
        if active is None:
            return None
        state = await runlog.load_state(conn, active.run_id, lock=True)
        events = decide(state, CancelRun(requested_by=principal.name, at=rt.clock()))
        if not events:
            return state
        result = await runlog.append(conn, active.run_id, events)
        command = CancelRunCommand(
            event_id=rt.new_id(), occurred_at=events[0].occurred_at, integration_id=integration.id,
            integration_external_id=integration.external_id, run_id=active.run_id,
            payload=CancelRunPayload(requested_by=principal.name),
        )  # fmt: skip
        await outbox.enqueue(conn, [(topics.RUN_CANCELLATIONS, str(integration.id), command.to_bytes())])
        return result.state


async def list_runs(
    rt: Runtime,
    principal: Principal,
    external_id: str,
    statuses: list[RunStatus] | None,
    limit: int,
    page: int = 0,
) -> tuple[list[RunState], bool]:
    """One page of runs, newest first, and whether another page follows."""
    async with rt.pool.acquire() as conn:
        integration = await visible_integration(conn, principal, external_id)
        runs = await run_reads.list_runs(conn, integration.id, statuses, limit + 1, page * limit)
    return runs[:limit], len(runs) > limit


async def latest_run(rt: Runtime, principal: Principal, external_id: str) -> RunState:
    runs, _ = await list_runs(rt, principal, external_id, None, 1)
    if not runs:
        raise NotFound(f"Integration '{external_id}' has never run.")
    return runs[0]


async def get_run(rt: Runtime, principal: Principal, external_id: str, run_id: uuid.UUID) -> RunState:
    async with rt.pool.acquire() as conn:
        integration = await visible_integration(conn, principal, external_id)
        run = await run_reads.get_run(conn, run_id)
    if run is None or run.integration_id != integration.id:
        raise NotFound(f"Run '{run_id}' was not found for integration '{external_id}'.")
    return run
