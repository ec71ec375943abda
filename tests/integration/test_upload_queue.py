"""Imports queue: one run per integration at a time, oldest upload first, started by the scheduler's step when
the integration becomes free; uploads nobody needs any more are pruned."""

from __future__ import annotations

import uuid

import pytest

from services.core.imports.formats import Format
from services.core.store import runlog
from services.core.store import uploads as upload_store
from services.core.store.uploads import Upload
from services.core.uploads import UploadService, start_next_import, start_waiting_imports
from shared.events import RunSucceeded
from tests.integration.conftest import OWNER
from tests.integration.test_lineage import custom_integration
from tests.integration.test_run_log import report, started, succeeded

pytestmark = pytest.mark.integration


async def store(runtime, integration, format_="file_jsonl") -> Upload:
    upload = Upload(id=uuid.uuid4(), integration_id=integration.id, format=format_, queued=format_ != "dbt_core",
                    created_at=runtime.clock(), created_by="7", created_by_name="uploader", size_bytes=3)  # fmt: skip
    async with runtime.pool.acquire() as conn:
        await upload_store.insert(conn, upload, {"resources_file": b"abc"})
    return upload


async def finish(runtime, run) -> None:
    async with runtime.pool.acquire() as conn, conn.transaction():
        await runlog.append(conn, run.run_id, [started(run), report(run, RunSucceeded, succeeded(0))])


async def test_imports_run_one_at_a_time_in_upload_order(runtime, integrations):
    integration = await custom_integration(integrations)
    first = await store(runtime, integration)
    async with runtime.pool.acquire() as conn, conn.transaction():
        run = await start_next_import(runtime, conn, integration)
    assert run is not None and run.upload_id == first.id and run.created_by == "7"
    second, third = await store(runtime, integration), await store(runtime, integration)
    async with runtime.pool.acquire() as conn, conn.transaction():
        assert await start_next_import(runtime, conn, integration) is None  # busy: they wait
    assert await start_waiting_imports(runtime) == 0

    await finish(runtime, run)
    assert await start_waiting_imports(runtime) == 1
    async with runtime.pool.acquire() as conn:
        active = await conn.fetchrow("SELECT * FROM runs WHERE integration_id = $1 AND status = 'QUEUED'",
                                     integration.id)  # fmt: skip
        assert active["upload_id"] == second.id
        stored = {r["id"]: r["queued"] for r in await conn.fetch(
            "SELECT id, queued FROM uploads WHERE integration_id = $1", integration.id)}  # fmt: skip
    # The first import ended: its upload is gone; the second is being imported, the third waits.
    assert stored == {second.id: False, third.id: True}
    assert await start_waiting_imports(runtime) == 0


async def test_the_latest_dbt_artifacts_are_kept_for_the_next_trigger(runtime, integrations):
    integration = await custom_integration(integrations)
    older, latest = await store(runtime, integration, "dbt_core"), await store(runtime, integration, "dbt_core")
    async with runtime.pool.acquire() as conn:
        assert await upload_store.prune(conn, integration.id) == 1
        assert (await upload_store.latest(conn, integration.id, "dbt_core")).id == latest.id
        assert await upload_store.get(conn, older.id) is None
        assert await upload_store.parts_of(conn, latest.id) == {"resources_file": b"abc"}


CSV = b"database,schema,name,col_name\nshop,public,orders,id\n"


async def test_an_upload_answers_with_its_own_run_only(runtime, integrations):
    """When an older queued upload takes the slot that just became free, the new one is reported as waiting."""
    service = UploadService(runtime, integrations)
    integration = await custom_integration(integrations)
    first = await service.accept(OWNER, integration, Format.FILE_CSV, {"file": CSV})
    assert first.run is not None and first.run.upload_id == first.upload_id
    waiting = await store(runtime, integration, "file_csv")  # queued behind the first import
    await finish(runtime, first.run)  # the slot is free, and the scheduler has not started `waiting` yet
    latest = await service.accept(OWNER, integration, Format.FILE_CSV, {"file": CSV})
    assert latest.run is None  # `waiting` got the slot: this upload waits its turn
    async with runtime.pool.acquire() as conn:
        active = await conn.fetchval("SELECT upload_id FROM runs WHERE integration_id = $1 AND status = 'QUEUED'",
                                     integration.id)  # fmt: skip
        assert active == waiting.id
        assert await conn.fetchval("SELECT queued FROM uploads WHERE id = $1", latest.upload_id)
