"""Uploads that sync an integration: Secoda's CSV and JSONL metadata imports and dbt Core artifacts.

An upload is validated whole (its format's parser) before anything is stored; then it is stored once in
PostgreSQL and a run imports it: the run request carries the upload's id, never the bytes. Imports queue: each
is a full snapshot, imported in the order they arrived, one run at a time per integration (never a 409). dbt
artifacts are stored as the integration's latest pair; a trigger starts the sync of that pair (409 while a sync
runs).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
import structlog

from services.core.errors import AlreadyRunning, InvalidInput
from services.core.imports.formats import FORMATS, Format, UploadFormat
from services.core.ingestion import (
    Runtime,
    SyncRequest,
    claim_run,
    editable_integration,
    require_edit,
)
from services.core.integrations import IntegrationService
from services.core.model import Integration, Principal
from services.core.runs import Requester, RunState
from services.core.store import dbt as dbt_store
from services.core.store import integrations as integration_store
from services.core.store import run_reads
from services.core.store import uploads as upload_store
from services.core.store.dbt import FailingTests
from services.core.store.uploads import Upload

log = structlog.get_logger()


@dataclass(frozen=True)
class Accepted:
    """A stored upload, and the run importing it if it could start at once (else it waits its turn)."""

    upload_id: uuid.UUID
    run: RunState | None


class UploadService:
    # Parsing holds a whole upload and its snapshot in memory: at most this many at once per API process.
    PARSING_AT_ONCE = 2

    def __init__(self, rt: Runtime, integrations: IntegrationService) -> None:
        self._rt = rt
        self._integrations = integrations
        self._parsing = asyncio.Semaphore(self.PARSING_AT_ONCE)

    async def target(self, principal: Principal, integration_id: uuid.UUID, format_: Format) -> Integration:
        """The integration an upload is for, if it exists, accepts this format and the key may change it: checked
        before a byte of the upload is read."""
        integration = await self._integrations.get_by_id(principal, integration_id)
        require_edit(principal, integration)
        _check_accepts(FORMATS[format_], integration)
        return integration

    async def accept(
        self, principal: Principal, integration: Integration, format_: Format, parts: Mapping[str, bytes]
    ) -> Accepted:
        """Validate and store an upload; queue its import (CSV/JSONL) or keep it for a trigger (dbt). The run in the
        answer is this upload's import if it could start at once (None: it waits its turn)."""
        spec = FORMATS[format_]
        async with self._parsing:  # off the event loop: other requests are served meanwhile
            await asyncio.to_thread(spec.parse, parts)
        upload = Upload(
            id=self._rt.new_id(), integration_id=integration.id, format=format_.value, queued=spec.queued,
            created_at=self._rt.clock(), created_by=principal.principal_id, created_by_name=principal.name,
            size_bytes=sum(len(content) for content in parts.values()),
        )  # fmt: skip
        async with self._rt.pool.acquire() as conn, conn.transaction():
            locked = await editable_integration(conn, principal, integration.external_id, lock=True)
            await upload_store.insert(conn, upload, parts)
            run = await start_next_import(self._rt, conn, locked) if spec.queued else None
            await upload_store.prune(conn, integration.id)
        if run is not None and run.upload_id != upload.id:
            run = None  # an older queued upload got the free slot; this one waits its turn
        log.info("upload_stored", upload_id=str(upload.id), format=format_.value, bytes=upload.size_bytes,
                 run_id=str(run.run_id) if run else None)  # fmt: skip
        return Accepted(upload.id, run)

    async def trigger_dbt(self, principal: Principal, integration_id: uuid.UUID) -> RunState:
        """Start a sync of the latest dbt artifacts (AlreadyRunning while a sync runs)."""
        integration = await self._integrations.get_by_id(principal, integration_id)
        _check_accepts(FORMATS[Format.DBT_CORE], integration)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            locked = await editable_integration(conn, principal, integration.external_id, lock=True)
            latest = await upload_store.latest(conn, locked.id, Format.DBT_CORE.value)
            if latest is None:
                raise InvalidInput("No dbt artifacts were uploaded yet: POST them to upload_artifacts first.")
            request = SyncRequest("manual", Requester(principal.name, principal.principal_id), upload_id=latest.id)
            return await claim_run(conn, locked, request, at=self._rt.clock(), run_id=self._rt.new_id(),
                                   task_id=self._rt.new_id())  # fmt: skip

    async def failing_tests(self, principal: Principal, integration_id: uuid.UUID) -> FailingTests:
        integration = await self._integrations.get_by_id(principal, integration_id)
        _check_accepts(FORMATS[Format.DBT_CORE], integration)
        async with self._rt.pool.acquire() as conn:
            return await dbt_store.failing_tests(conn, integration.id)


def _check_accepts(spec: UploadFormat, integration: Integration) -> None:
    if integration.source is not spec.source:
        raise InvalidInput(
            f"Integration '{integration.id}' is of type '{integration.source.value}'; only '{spec.source.value}' "
            f"integrations accept this upload."
        )


async def start_next_import(rt: Runtime, conn: asyncpg.Connection, integration: Integration) -> RunState | None:
    """Start the import of the integration's oldest queued upload, if no run is active (inside the caller's
    transaction, with the integration locked). None: nothing queued, or the integration is busy."""
    if await run_reads.active_run(conn, integration.id) is not None:
        return None
    upload = await upload_store.oldest_queued(conn, integration.id)
    if upload is None:
        return None
    request = SyncRequest("manual", Requester(upload.created_by_name, upload.created_by), upload_id=upload.id)
    try:
        run = await claim_run(conn, integration, request, at=rt.clock(), run_id=rt.new_id(), task_id=rt.new_id())
    except AlreadyRunning:  # a run started between the check and the claim: this upload waits for the next turn
        return None
    await upload_store.dequeue(conn, upload.id)
    return run


async def start_waiting_imports(rt: Runtime, batch_size: int = 100) -> int:
    """The scheduler's step: start the next queued import of every integration whose last run ended."""
    started = 0
    async with rt.pool.acquire() as conn:
        waiting = await upload_store.integrations_waiting(conn, batch_size)
        for integration_id in waiting:
            async with conn.transaction():
                await integration_store.lock(conn, integration_id)
                integration = await integration_store.get_by_id(conn, integration_id)
                if integration is None:
                    continue
                run = await start_next_import(rt, conn, integration)
                await upload_store.prune(conn, integration_id)
            if run is not None:
                started += 1
                log.info("import_started", integration=integration.external_id, run_id=str(run.run_id))
    return started
