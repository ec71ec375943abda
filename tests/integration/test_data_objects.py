"""Data objects over the real asset store: ids, deletes and settings as tasks of the run log, rebuild."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.core.connections import ActiveSync, ConnectionService
from services.core.data_objects import ObjectService
from services.core.ingestion import Runtime, SyncRequest, editable_integration, request_cancel, start_sync
from services.core.integrations import IntegrationService
from services.core.model import Integration
from services.core.objects import Grantee, SettingsChange, key_of, object_id
from services.core.runs import SYSTEM, RunState
from services.core.store import integrations as integration_store
from services.core.store import rebuild, runlog
from shared.events import AssetsChanged, AssetsChangedPayload, RunFailed, RunSucceeded
from tests.integration.conftest import OWNER
from tests.integration.test_run_log import report, started, succeeded

pytestmark = pytest.mark.integration


def asset(names: list[str], kind: str, fingerprint: str = "f") -> dict[str, Any]:
    key = key_of(names)
    parent = key_of(names[:-1])  # the database's parent is '', the connection
    return {"key": key, "kind": kind, "name": names[-1], "parent_key": parent, "fingerprint": fingerprint,
            "attributes": {}}  # fmt: skip


CATALOG = [
    asset(["db"], "database"),
    asset(["db", "sales"], "schema"),
    asset(["db", "sales", "orders"], "table"),
    asset(["db", "sales", "orders", "id"], "column"),
    asset(["db", "sales", "a/b"], "view"),
    asset(["db", "hr dept"], "schema"),
    asset(["db", "hr dept", "people"], "table"),
]


@pytest.fixture
def services(runtime: Runtime, integrations: IntegrationService) -> tuple[ConnectionService, ObjectService]:
    connections = ConnectionService(runtime, integrations)
    return connections, ObjectService(runtime, connections)


async def sync(runtime: Runtime, integration: Integration, upserted: list[dict[str, Any]],
               request: SyncRequest | None = None, deleted: list[str] | None = None) -> RunState:  # fmt: skip
    """A sync whose connector reported `upserted` and `deleted` (the connector itself is tested elsewhere)."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        run = await start_sync(runtime, conn, integration, request or SyncRequest("manual"))
        changed = AssetsChangedPayload.model_validate({"upserted": upserted, "deleted": deleted or []})
        result = await runlog.append(conn, run.run_id, [
            started(run), report(run, AssetsChanged, changed), report(run, RunSucceeded, succeeded(len(upserted))),
        ])  # fmt: skip
    assert result.state is not None
    return result.state


async def test_object_ids_are_the_same_in_python_and_in_postgres_and_stable(runtime, make_integration, services):
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch("SELECT asset_key, object_id FROM assets WHERE integration_id = $1", integration.id)
    assert {r["asset_key"]: r["object_id"] for r in rows} == {a["key"]: object_id(integration.id, a["key"])
                                                               for a in CATALOG}  # fmt: skip
    view = await objects.get(OWNER, integration.external_id, key_of(["db", "sales", "a/b"]))
    await sync(runtime, integration, [asset(["db", "sales", "a/b"], "view", "changed")])
    again = await objects.get(OWNER, integration.external_id, key_of(["db", "sales", "a/b"]))
    assert again.id == view.id and again.updated_at > view.updated_at and again.created_at == view.created_at


async def test_deleting_a_subtree_is_a_task_and_a_later_sync_finds_the_objects_again(runtime, make_integration,
                                                                                       services):  # fmt: skip
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    child_count, task = await objects.delete(OWNER, integration.external_id, "db/sales", deregisters=False)
    assert child_count == 2  # orders and a/b; the column is not a data object
    assert task is not None and (task.kind, task.status.value, task.counts.deleted) == ("delete", "SUCCESS", 4)
    async with runtime.pool.acquire() as conn:
        live = await conn.fetch("SELECT asset_key FROM assets WHERE integration_id = $1 AND deleted_at IS NULL",
                                integration.id)  # fmt: skip
    assert sorted(r["asset_key"] for r in live) == ["db", "db/hr dept", "db/hr dept/people"]
    await sync(runtime, integration, CATALOG[1:5])  # the source still has them: found again, same ids
    found = await objects.get(OWNER, integration.external_id, "db/sales/orders")
    assert found.id == object_id(integration.id, "db/sales/orders")


async def test_a_delete_or_a_crawl_while_a_sync_runs_is_a_conflict(runtime, make_integration, services):
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await start_sync(runtime, conn, integration, SyncRequest("manual"))
    with pytest.raises(ActiveSync):
        await objects.delete(OWNER, integration.external_id, "db/sales", deregisters=False)
    with pytest.raises(ActiveSync):
        await objects.crawl(OWNER, integration.external_id, "db/sales", force_recursive=False)


async def test_settings_trickle_down_and_a_childs_own_override_is_kept(runtime, make_integration, services):
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    key = integration.external_id
    await objects.change_settings(OWNER, key, "db/sales/orders", SettingsChange(isActive=True))
    _, task = await objects.change_settings(OWNER, key, "db/sales", SettingsChange(
        isActive=False, dataOwners=[Grantee(id=3, type="group")]))  # fmt: skip
    assert (task.kind, task.status.value) == ("settings", "SUCCESS")
    view = await objects.get(OWNER, key, key_of(["db", "sales", "a/b"]))
    orders = await objects.get(OWNER, key, "db/sales/orders")
    schema = await objects.get(OWNER, key, "db/sales")
    assert (view.active, orders.active, schema.active) == (False, True, False)
    assert view.data_source_id is None and orders.data_source_id is not None
    assert schema.overrides == ["isActive", "dataOwners"] and schema.overridden_below == {"isActive"}
    await objects.change_settings(
        OWNER, key, "db/sales/orders", SettingsChange(dataOwners=[Grantee(id=4, type="user")])
    )
    orders = await objects.get(OWNER, key, "db/sales/orders")
    assert [(g.id, g.type) for g in orders.settings.data_owners] == [(3, "group"), (4, "user")]
    # Re-activating the subtree starts a SYSTEM sync of it.
    _, task = await objects.change_settings(OWNER, key, "db/sales", SettingsChange(isActive=True))
    assert (task.kind, task.trigger, task.scope) == ("sync", "system", "db/sales")


async def test_objects_found_under_a_parent_that_holds_back_new_children_are_inactive(runtime, make_integration,
                                                                                      services):  # fmt: skip
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    await objects.change_settings(OWNER, integration.external_id, "db/hr dept",
                                  SettingsChange(activateNewChildren=False))  # fmt: skip
    await sync(runtime, integration, [asset(["db", "hr dept", "payroll"], "table"),
                                      asset(["db", "sales", "returns"], "table")])  # fmt: skip
    payroll = await objects.get(OWNER, integration.external_id, "db/hr dept/payroll")
    returns = await objects.get(OWNER, integration.external_id, "db/sales/returns")
    assert (payroll.active, payroll.overrides, returns.active) == (False, ["isActive"], True)


async def test_rebuild_reproduces_assets_runs_and_sync_scopes_after_deletes_and_scoped_syncs(
    runtime, make_integration, services
) -> None:
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    await objects.delete(OWNER, integration.external_id, "db/hr dept", deregisters=False)
    await objects.change_settings(OWNER, integration.external_id, "db/sales", SettingsChange(isActive=False))
    await sync(runtime, integration, [asset(["db", "sales", "orders"], "table", "v2")],
               SyncRequest("manual", scope="db/sales", force_recursive=True))  # fmt: skip

    async def snapshot() -> list[list[dict[str, Any]]]:
        async with runtime.pool.acquire() as conn:
            return [[dict(r) for r in await conn.fetch(query, integration.id)] for query in (
                "SELECT * FROM runs WHERE integration_id = $1 ORDER BY id",
                "SELECT * FROM assets WHERE integration_id = $1 ORDER BY asset_key",
                "SELECT * FROM sync_scopes WHERE integration_id = $1 ORDER BY scope",
                "SELECT * FROM object_settings WHERE integration_id = $1 ORDER BY object_key",
            )]  # fmt: skip

    before = await snapshot()
    async with runtime.pool.acquire() as conn:
        await rebuild.rebuild(conn)
    assert await snapshot() == before
    runs, assets, scopes, _ = before
    assert sorted(r["kind"] for r in runs) == ["delete", "settings", "sync", "sync"]
    assert [s["scope"] for s in scopes] == ["", "db/sales"]
    assert [a["asset_key"] for a in assets if a["deleted_at"] is not None] == ["db/hr dept", "db/hr dept/people"]


async def test_a_connection_whose_last_sync_failed_is_unhealthy_until_validated(runtime, make_integration, services):
    integration = await make_integration()
    async with runtime.pool.acquire() as conn, conn.transaction():
        run = await start_sync(runtime, conn, integration, SyncRequest("manual"))
        await runlog.append(conn, run.run_id, [started(run), report(run, RunFailed, succeeded(0))])
        failed = await integration_store.get_by_external_id(conn, integration.external_id)
    assert failed is not None and failed.state.value == "UNHEALTHY"


async def test_activating_a_subtree_while_a_sync_runs_is_a_conflict_that_changes_nothing(runtime, make_integration,
                                                                                          services):  # fmt: skip
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    await objects.change_settings(OWNER, integration.external_id, "db/sales", SettingsChange(isActive=False))
    async with runtime.pool.acquire() as conn, conn.transaction():
        await start_sync(runtime, conn, integration, SyncRequest("manual"))
    with pytest.raises(ActiveSync):  # that sync would not list the subtree: never report the activation as done
        await objects.change_settings(OWNER, integration.external_id, "db/sales", SettingsChange(isActive=True))
    assert not (await objects.get(OWNER, integration.external_id, "db/sales")).settings.is_active


async def test_the_settings_of_objects_a_sync_found_gone_go_with_them(runtime, make_integration, services):
    _, objects = services
    integration = await make_integration()
    await sync(runtime, integration, CATALOG)
    await objects.change_settings(OWNER, integration.external_id, "db/sales/orders", SettingsChange(isActive=False))
    assert (await objects.get(OWNER, integration.external_id, "db/sales")).overridden_below == {"isActive"}
    await sync(runtime, integration, [], deleted=["db/sales/orders", "db/sales/orders/id"])
    assert (await objects.get(OWNER, integration.external_id, "db/sales")).overridden_below == set()


async def test_a_cancel_and_the_projector_appending_the_same_run_do_not_deadlock(runtime, make_integration):
    """The API locks the integration, then the run; the projector locks the run, then (foreign key checks of its
    inserts) the integration row. The integration lock must not block those checks."""
    integration = await make_integration()
    async with runtime.pool.acquire() as conn, conn.transaction():
        run = await start_sync(runtime, conn, integration, SyncRequest("manual"))
    async with runtime.pool.acquire() as conn:
        await runlog.append(conn, run.run_id, [started(run)])
    api = await runtime.pool.acquire()
    projector = await runtime.pool.acquire()
    try:
        api_tx, projector_tx = api.transaction(), projector.transaction()
        await api_tx.start()
        await projector_tx.start()
        await editable_integration(api, OWNER, integration.external_id, lock=True)  # the API's first lock
        changed = AssetsChangedPayload.model_validate({"upserted": CATALOG[:1]})
        appending = asyncio.create_task(runlog.append(projector, run.run_id, [report(run, AssetsChanged, changed)]))
        await asyncio.sleep(0.3)  # the projector holds the run and inserts its event (a foreign key check)
        cancelling = asyncio.create_task(request_cancel(runtime, api, integration, run.run_id, SYSTEM))
        await asyncio.wait_for(appending, timeout=5)  # with FOR UPDATE on the integration: blocked, then 40P01
        await projector_tx.commit()
        state = await asyncio.wait_for(cancelling, timeout=5)
        await api_tx.commit()
    finally:
        await runtime.pool.release(api)
        await runtime.pool.release(projector)
    assert state is not None and state.cancel_requested
