"""The run log in real Postgres: atomic claim, idempotent append, absorbing terminal states, rebuild."""

from __future__ import annotations

import asyncio

import pytest

from services.core import ingestion
from services.core.errors import AlreadyRunning
from services.core.runs import RunStatus
from services.core.store import rebuild, runlog
from shared.events import (
    AssetCountsPayload,
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    RunFailed,
    RunOwner,
    RunStarted,
    RunSucceeded,
    StartedPayload,
)
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration
CONNECTOR = RunOwner(connector_id="c", attempt=1)


def report(run, kind, payload):
    return kind(integration_id=run.integration_id, integration_external_id=run.integration_external_id,
                run_id=run.run_id, owner=CONNECTOR, payload=payload)  # fmt: skip


def started(run) -> RunStarted:
    return report(run, RunStarted, StartedPayload(connector_id="c"))


def succeeded(processed: int) -> FinishedPayload:
    return FinishedPayload(counts=AssetCountsPayload(assets_processed=processed), message="ok")


async def test_concurrent_triggers_claim_exactly_one_run(runtime, make_integration):
    integration = await make_integration()
    results = await asyncio.gather(
        *(ingestion.trigger_run(runtime, OWNER, integration.external_id) for _ in range(25)), return_exceptions=True
    )
    claimed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, AlreadyRunning)]
    assert len(claimed) == 1 and len(refused) == 24
    async with runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM runs WHERE integration_id = $1", integration.id) == 1
        # The start command went to the outbox in the same transaction as the claim.
        commands = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'ingest.run-requests.v1' AND key = $1",
            str(integration.id).encode(),
        )
        assert commands == 1


async def test_appending_the_same_events_twice_changes_nothing(runtime, make_integration):
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    events = [started(run), report(run, RunSucceeded, succeeded(3))]
    async with runtime.pool.acquire() as conn:
        async with conn.transaction():
            first = await runlog.append(conn, run.run_id, events)
        before = await conn.fetch("SELECT * FROM run_events WHERE run_id = $1 ORDER BY seq", run.run_id)
        async with conn.transaction():
            second = await runlog.append(conn, run.run_id, events)
        after = await conn.fetch("SELECT * FROM run_events WHERE run_id = $1 ORDER BY seq", run.run_id)
    assert len(first.applied) == 2 and second.duplicates == 2 and not second.applied
    assert before == after
    assert second.state is not None and second.state.status is RunStatus.SUCCESS


async def test_events_after_a_terminal_state_are_recorded_as_ignored(runtime, make_integration):
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await runlog.append(conn, run.run_id, [started(run), report(run, RunFailed, succeeded(1))])
        late = report(run, RunSucceeded, succeeded(99))
        result = await runlog.append(conn, run.run_id, [late])
        row = await conn.fetchrow("SELECT status, assets_processed, version FROM runs WHERE id = $1", run.run_id)
        ignored = await conn.fetchval("SELECT reason FROM run_events_ignored WHERE event_id = $1", late.event_id)
    assert not result.applied and len(result.ignored) == 1
    assert (row["status"], row["assets_processed"], row["version"]) == ("FAILED", 1, 3)
    assert "already FAILED" in ignored


async def test_a_new_run_can_be_claimed_once_the_previous_one_finished(runtime, make_integration):
    integration = await make_integration()
    first = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    with pytest.raises(AlreadyRunning):
        await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    await ingestion.cancel_run(runtime, OWNER, integration.external_id)  # queued: cancelled at once
    second = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    assert second.run_id != first.run_id
    latest = await ingestion.latest_run(runtime, OWNER, integration.external_id)
    assert latest.run_id == second.run_id


async def test_rebuild_reproduces_the_live_read_models(runtime, make_integration):
    integration = await make_integration()
    asset = {"key": "db/s", "kind": "schema", "name": "s", "parent_key": None, "fingerprint": "f1", "attributes": {}}
    for round_ in range(2):
        run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
        changed = AssetsChangedPayload.model_validate({"upserted": [asset | {"fingerprint": f"f{round_}"}]})
        async with runtime.pool.acquire() as conn, conn.transaction():
            await runlog.append(conn, run.run_id, [
                started(run), report(run, AssetsChanged, changed), report(run, RunSucceeded, succeeded(1)),
            ])  # fmt: skip
    async with runtime.pool.acquire() as conn:
        runs_before = await conn.fetch("SELECT * FROM runs ORDER BY id")
        assets_before = await conn.fetch("SELECT * FROM assets ORDER BY integration_id, asset_key")
        replayed = await rebuild.rebuild(conn)
        runs_after = await conn.fetch("SELECT * FROM runs ORDER BY id")
        assets_after = await conn.fetch("SELECT * FROM assets ORDER BY integration_id, asset_key")
    assert replayed > 0
    assert [dict(r) for r in runs_after] == [dict(r) for r in runs_before]
    assert [dict(r) for r in assets_after] == [dict(r) for r in assets_before]
    mine = [a for a in assets_after if a["integration_id"] == integration.id]
    assert [(a["asset_key"], a["fingerprint"]) for a in mine] == [("db/s", "f1")]


async def test_runs_are_listed_newest_first_and_filtered_by_status(runtime, make_integration):
    integration = await make_integration()
    ids = []
    for _ in range(3):
        run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
        ids.append(run.run_id)
        await ingestion.cancel_run(runtime, OWNER, integration.external_id)
    await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    listed, more = await ingestion.list_runs(runtime, OWNER, integration.external_id, None, 50)
    assert [r.run_id for r in listed][1:] == list(reversed(ids)) and not more
    cancelled, more = await ingestion.list_runs(runtime, OWNER, integration.external_id, [RunStatus.CANCELLED], 2)
    assert [r.run_id for r in cancelled] == list(reversed(ids))[:2] and more
    rest, more = await ingestion.list_runs(runtime, OWNER, integration.external_id, [RunStatus.CANCELLED], 2, page=1)
    assert [r.run_id for r in rest] == [ids[0]] and not more
    # The same page by keyset position (what the Link header carries): after the last run of the first page.
    position = (cancelled[-1].requested_at, cancelled[-1].run_id)
    keyset, more = await ingestion.list_runs(runtime, OWNER, integration.external_id, [RunStatus.CANCELLED], 2,
                                             page=1, after=position)  # fmt: skip
    assert [r.run_id for r in keyset] == [ids[0]] and not more


async def test_rebuild_keeps_the_heartbeats_of_active_runs(runtime, make_integration):
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    async with runtime.pool.acquire() as conn:
        async with conn.transaction():
            await runlog.append(conn, run.run_id, [started(run)])
        await conn.execute("INSERT INTO run_heartbeats VALUES ($1, 'c', now())", run.run_id)
        await rebuild.rebuild(conn)
        kept = await conn.fetchval("SELECT connector_id FROM run_heartbeats WHERE run_id = $1", run.run_id)
        status = await conn.fetchval("SELECT status FROM runs WHERE id = $1", run.run_id)
    assert (kept, status) == ("c", "RUNNING")
