"""Tasks: the runs of a connection seen as Immuta's tasks (one run per task), and their cancellation."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.core.connections import ConnectionService
from services.core.errors import Conflict, NotFound
from services.core.ingestion import (
    Runtime,
    SyncRequest,
    editable_integration,
    request_cancel,
    requester,
    visible_integration,
)
from services.core.model import Principal
from services.core.runs import RunState
from services.core.store import run_reads
from services.core.store.run_reads import TaskFilter

TaskKeyset = tuple[datetime, uuid.UUID]  # (requested at, run id), newest first


class TaskService:
    def __init__(self, rt: Runtime, connections: ConnectionService) -> None:
        self._rt = rt
        self._connections = connections

    async def list(
        self, principal: Principal, key: str, where: TaskFilter, after: TaskKeyset | None, limit: int
    ) -> tuple[list[RunState], TaskKeyset | None]:
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            runs = await run_reads.tasks_after(conn, connection.id, where, after, limit + 1)
        page = runs[:limit]
        return page, (page[-1].requested_at, page[-1].run_id) if len(runs) > limit else None

    async def create_sync(self, principal: Principal, key: str) -> RunState:
        async with self._rt.pool.acquire() as conn, conn.transaction():
            connection = await editable_integration(conn, principal, key, lock=True)
            return await self._connections.start_sync(conn, connection, SyncRequest("manual", requester(principal)))

    async def get(self, principal: Principal, key: str, task_id: uuid.UUID) -> RunState:
        async with self._rt.pool.acquire() as conn:
            connection = await visible_integration(conn, principal, key)
            run = await run_reads.get_by_task(conn, connection.id, task_id)
        if run is None:
            raise NotFound(f"Task '{task_id}' was not found in connection '{key}'.")
        return run

    async def run(self, principal: Principal, key: str, task_id: uuid.UUID, run_id: uuid.UUID) -> RunState:
        run = await self.get(principal, key, task_id)
        if run.run_id != run_id:
            raise NotFound(f"Task '{task_id}' has no run '{run_id}'.")
        return run

    async def cancel(self, principal: Principal, key: str, task_id: uuid.UUID, run_id: uuid.UUID) -> RunState:
        """Request cancellation; the run ends CANCELLED once its connector stopped. A finished run is a 409."""
        async with self._rt.pool.acquire() as conn, conn.transaction():
            connection = await editable_integration(conn, principal, key, lock=True)
            run = await run_reads.get_by_task(conn, connection.id, task_id)
            if run is None or run.run_id != run_id:
                raise NotFound(f"Task '{task_id}' has no run '{run_id}' in connection '{key}'.")
            if run.status.is_terminal:
                raise Conflict(f"Task run '{run_id}' has already finished; there is nothing to cancel.")
            state = await request_cancel(self._rt, conn, connection, run_id, requester(principal))
        assert state is not None
        return state
