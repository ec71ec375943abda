"""Application functions for runs: trigger, cancel, read. Every API dialect and the scheduler call these."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from services.core.errors import AlreadyRunning, Conflict, Forbidden, NotFound
from services.core.model import Integration, Principal
from services.core.runs import (
    SYSTEM,
    CancelRun,
    RecordTask,
    Requester,
    RequestRun,
    RunState,
    RunStatus,
    decide,
)
from services.core.sources import spec_for
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
        raise _not_visible(external_id)
    return integration


def _not_visible(external_id: str) -> NotFound:
    return NotFound(f"Integration '{external_id}' was not found, or this API key cannot see it.")


async def editable_integration(
    conn: asyncpg.Connection, principal: Principal, external_id: str, *, lock: bool = False
) -> Integration:
    """The integration if `principal` may change it. With `lock` (inside a transaction), it stays as read until
    the transaction ends: writers of one integration (read, validate, write) are serialised.

    The lock is FOR NO KEY UPDATE, taken only after the visibility check: it does not block the foreign key
    checks (KEY SHARE) of the projector appending this integration's run events while it holds a run's lock,
    so a cancel (integration, then run) and the projector (run, then integration) never deadlock."""
    integration = await visible_integration(conn, principal, external_id)
    require_edit(principal, integration)
    if lock:
        await integration_store.lock(conn, integration.id)
        locked = await integration_store.get_by_external_id(conn, external_id)
        if locked is None:  # deleted while we waited
            raise NotFound(f"Integration '{external_id}' was not found, or this API key cannot see it.")
        integration = locked
    return integration


def require_edit(principal: Principal, integration: Integration) -> None:
    if not principal.can_edit(integration.owning_team_id):
        needed = (
            f"INGESTION_EDIT on team '{integration.owning_team_external_id}'"
            if integration.owning_team_id
            else "organization-owner privileges (the integration has no owning team)"
        )
        raise Forbidden(f"This API key lacks {needed}.")


def requester(principal: Principal) -> Requester:
    return Requester(name=principal.name, principal_id=principal.principal_id)


@dataclass(frozen=True)
class SyncRequest:
    """What a sync covers and who asked: the whole connection by default; an object key and its subtree."""

    trigger: str  # manual | schedule | system
    requested_by: Requester = SYSTEM
    scope: str | None = None
    force_recursive: bool = False
    upload_id: uuid.UUID | None = None  # a sync importing this stored upload (the platform is not crawled)


async def claim_run(
    conn: asyncpg.Connection, integration: Integration, request: SyncRequest, *, at: datetime, run_id: uuid.UUID,
    task_id: uuid.UUID,
) -> RunState:  # fmt: skip
    """Atomically create the integration's one active run and queue its start command (outbox)."""
    if request.upload_id is None and not spec_for(integration.source).crawled:
        raise Conflict(
            f"Integration '{integration.external_id}' ({integration.source.value}) is not crawled: it is synced by "
            "uploading its metadata."
        )
    command = RequestRun(
        run_id, integration.id, integration.external_id, request.trigger, request.requested_by, at, task_id=task_id,
        scope=request.scope, force_recursive=request.force_recursive, upload_id=request.upload_id,
    )  # fmt: skip
    if await run_reads.active_run(conn, integration.id) is not None:
        raise _already_running(integration.external_id)  # the insert below is the guard; this read is cheaper
    events = decide(None, command)
    start = StartRunCommand(
        occurred_at=at,
        integration_id=integration.id,
        integration_external_id=integration.external_id,
        run_id=run_id,
        payload=StartRunPayload(source=integration.source.value, upload_id=request.upload_id),
    )
    try:
        async with conn.transaction():  # a savepoint when the caller already holds a transaction
            result = await runlog.append(conn, run_id, events)
            await outbox.enqueue(conn, [(topics.RUN_REQUESTS, str(integration.id), start.to_bytes())])
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != ACTIVE_RUN_CONSTRAINT:
            raise
        raise _already_running(integration.external_id) from None
    assert result.state is not None
    return result.state


def _already_running(external_id: str) -> AlreadyRunning:
    return AlreadyRunning(f"A run is already in progress for integration '{external_id}'.")


async def start_sync(rt: Runtime, conn: asyncpg.Connection, integration: Integration, request: SyncRequest) -> RunState:
    """Claim a sync of `integration` inside the caller's transaction (AlreadyRunning if one is active)."""
    return await claim_run(conn, integration, request, at=rt.clock(), run_id=rt.new_id(), task_id=rt.new_id())


async def record_task(rt: Runtime, conn: asyncpg.Connection, integration: Integration, task: TaskRecord) -> RunState:
    """Record work the control plane did at once (a delete, a settings change) as a run that already succeeded."""
    run_id = rt.new_id()
    command = RecordTask(
        run_id, integration.id, integration.external_id, task.kind, task.requested_by, rt.clock(), rt.new_id(),
        task.scope, task.message, task.deleted,
    )  # fmt: skip
    result = await runlog.append(conn, run_id, decide(None, command))
    assert result.state is not None
    return result.state


@dataclass(frozen=True)
class TaskRecord:
    kind: Literal["delete", "settings"]
    requested_by: Requester
    scope: str | None
    message: str
    deleted: tuple[str, ...] = ()  # asset keys


async def trigger_run(rt: Runtime, principal: Principal, external_id: str) -> RunState:
    async with rt.pool.acquire() as conn:
        # The common answer to a client polling POST .../run, in one read and no transaction; any other case
        # (not visible, not editable, not crawled, nothing active) takes the checks and the claim below.
        found = await run_reads.active_by_external_id(conn, external_id)
        if (
            found is not None
            and found.run is not None
            and principal.can_edit(found.owning_team_id)
            and spec_for(found.source).crawled
        ):
            raise _already_running(external_id)
        async with conn.transaction():
            integration = await editable_integration(conn, principal, external_id)
            return await start_sync(rt, conn, integration, SyncRequest("manual", requester(principal)))


async def cancel_run(
    rt: Runtime, principal: Principal, external_id: str, run_id: uuid.UUID | None = None
) -> RunState | None:
    """Request cancellation of the active run (only if it is `run_id`, when given: a page showing a run that
    ended must not cancel the next one), if any. Idempotent: no active run is not an error."""
    async with rt.pool.acquire() as conn, conn.transaction():
        integration = await editable_integration(conn, principal, external_id)
        active = await run_reads.active_run(conn, integration.id)
        if active is None or run_id not in (None, active.run_id):
            return None
        return await request_cancel(rt, conn, integration, active.run_id, requester(principal))


async def request_cancel(
    rt: Runtime, conn: asyncpg.Connection, integration: Integration, run_id: uuid.UUID, who: Requester
) -> RunState | None:
    """Ask the run's connector to stop (inside the caller's transaction); a finished run stays as it is."""
    state = await runlog.load_state(conn, run_id, lock=True)
    events = decide(state, CancelRun(requested_by=who, at=rt.clock()))
    if not events:
        return state
    result = await runlog.append(conn, run_id, events)
    command = CancelRunCommand(
        event_id=rt.new_id(), occurred_at=events[0].occurred_at, integration_id=integration.id,
        integration_external_id=integration.external_id, run_id=run_id,
        payload=CancelRunPayload(requested_by=who.name),
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
    after: tuple[datetime, uuid.UUID] | None = None,
) -> tuple[list[RunState], bool]:
    """One page of runs, newest first, and whether another page follows. `after` (a keyset position) wins
    over `page`: then the page starts right after that run, whatever its number."""
    async with rt.pool.acquire() as conn:
        integration = await visible_integration(conn, principal, external_id)
        offset = 0 if after is not None else page * limit
        runs = await run_reads.list_runs(conn, integration.id, statuses, limit + 1, offset, kind="sync", after=after)
    return runs[:limit], len(runs) > limit


async def latest_run(rt: Runtime, principal: Principal, external_id: str) -> RunState:
    async with rt.pool.acquire() as conn:
        found = await run_reads.latest_sync(conn, external_id)
    if found is None or not principal.can_view(found.owning_team_id):
        raise _not_visible(external_id)
    if found.run is None:
        raise NotFound(f"Integration '{external_id}' has never run.")
    return found.run


async def get_run(rt: Runtime, principal: Principal, external_id: str, run_id: uuid.UUID) -> RunState:
    async with rt.pool.acquire() as conn:
        return await visible_run(conn, principal, external_id, run_id)


async def visible_run(conn: asyncpg.Connection, principal: Principal, external_id: str, run_id: uuid.UUID) -> RunState:
    """A sync run of a visible integration (the Entropy dialect's runs), else NotFound."""
    integration = await visible_integration(conn, principal, external_id)
    run = await run_reads.get_run(conn, run_id)
    if run is None or run.integration_id != integration.id or run.kind != "sync":
        raise NotFound(f"Run '{run_id}' was not found for integration '{external_id}'.")
    return run
