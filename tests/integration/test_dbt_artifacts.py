"""dbt Core artifacts of a real `dbt build` (tests/dbt/tiny_shop) read as a snapshot, and the failing-tests query."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from services.core.imports.dbt_artifacts import parse
from services.core.imports.model import Internal, InvalidUpload, Resource, Snapshot
from services.core.imports.upload_text import resource_key
from services.core.integrations import IntegrationService, NewIntegration
from services.core.store.dbt import FailingTests, failing_tests
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration
pytest_plugins = ("tests.dbt.support",)  # dbt_artifacts, dbt_artifacts_fixed: one build each per session

RELATION = '"dbt_tiny_shop"."analytics".'


def read(artifacts: tuple[bytes, bytes]) -> Snapshot:
    manifest, run_results = artifacts
    return parse({"manifest": manifest, "run_results": run_results})


def tables(snapshot: Snapshot) -> dict[str, Resource]:
    return {r.attributes["unique_id"]: r for r in snapshot.resources if r.kind == "table"}


def dbt_tests(snapshot: Snapshot) -> dict[str, Resource]:
    """Test resources by the dbt test they run (`not_null`, ...; a unit test by its own name)."""
    return {r.attributes.get("test_name", r.name): r for r in snapshot.resources if r.kind == "test"}


def test_models_seeds_and_sources_become_tables_with_their_documented_columns(dbt_artifacts):
    snapshot = read(dbt_artifacts)
    found = tables(snapshot)
    assert {u: (r.name, r.attributes["native_type"]) for u, r in found.items()} == {
        "model.tiny_shop.stg_customers": ("stg_customers", "view"),
        "model.tiny_shop.stg_orders": ("stg_orders", "view"),
        "model.tiny_shop.customer_orders": ("customer_orders", "table"),
        "seed.tiny_shop.raw_orders": ("raw_orders", "seed"),
        "source.tiny_shop.shop.customers": ("shop_customers", "source"),  # the table's name, not the source's
    }  # the on-run-start hook (an `operation` node) is not a resource
    orders = found["model.tiny_shop.stg_orders"]
    assert orders.attributes["databuilder_id"] == RELATION + '"stg_orders"'
    assert (orders.key, orders.parent_key) == (resource_key(RELATION + '"stg_orders"'), "")
    assert orders.attributes["description"] == "Orders, renamed."
    columns = {(r.parent_key, r.name): r for r in snapshot.resources if r.kind == "column"}
    assert len(columns) == 9
    typed = columns[(found["model.tiny_shop.stg_customers"].key, "customer_id")]
    databuilder_id = RELATION + '"stg_customers".customer_id'
    assert typed.key == resource_key(databuilder_id)
    assert typed.attributes == {"databuilder_id": databuilder_id, "description": "Customer number.", "type": "integer"}
    assert columns[(orders.key, "amount")].attributes == {
        "databuilder_id": RELATION + '"stg_orders".amount', "description": "Order total in EUR."}  # fmt: skip
    assert columns[(found["seed.tiny_shop.raw_orders"].key, "ordered_on")].attributes["description"]
    assert columns[(found["source.tiny_shop.shop.customers"].key, "id")].attributes["description"]
    assert snapshot.warnings == []


def test_depends_on_becomes_lineage_from_sources_seeds_and_models(dbt_artifacts):
    snapshot = read(dbt_artifacts)
    key = {u: r.key for u, r in tables(snapshot).items()}
    assert all(isinstance(e.source, Internal) and isinstance(e.target, Internal) for e in snapshot.edges)
    assert {(e.source.key, e.target.key) for e in snapshot.edges} == {
        (key["source.tiny_shop.shop.customers"], key["model.tiny_shop.stg_customers"]),
        (key["seed.tiny_shop.raw_orders"], key["model.tiny_shop.stg_orders"]),
        (key["model.tiny_shop.stg_orders"], key["model.tiny_shop.customer_orders"]),
    }  # the relationships test's dependency on stg_customers is no lineage
    assert len(snapshot.edges) == 3


def test_test_results_attach_to_the_models_they_test(dbt_artifacts):
    snapshot = read(dbt_artifacts)
    key = {u: r.key for u, r in tables(snapshot).items()}
    found = {name: (r.parent_key, r.attributes["status"], r.attributes.get("severity"))
             for name, r in dbt_tests(snapshot).items()}  # fmt: skip
    assert found == {
        "unique": (key["model.tiny_shop.stg_orders"], "pass", "error"),
        "not_null": (key["model.tiny_shop.stg_customers"], "warn", "warn"),
        # attached_node decides: the test also depends on stg_customers, the model it refers to
        "relationships": (key["model.tiny_shop.customer_orders"], "fail", "error"),
        "revenue_sums_the_order_amounts": (key["model.tiny_shop.customer_orders"], "pass", None),  # a unit test
    }
    failing = dbt_tests(snapshot)["relationships"]
    assert failing.attributes["column_name"] == "customer_id"
    assert failing.key == resource_key(failing.attributes["unique_id"])
    assert failing.name.startswith("relationships_customer_orders_customer_id")


def test_after_the_data_is_fixed_every_test_passes_and_identities_stay(dbt_artifacts, dbt_artifacts_fixed):
    before, after = read(dbt_artifacts), read(dbt_artifacts_fixed)
    assert {r.attributes["status"] for r in dbt_tests(after).values()} == {"pass"}
    assert [r.key for r in after.resources] == [r.key for r in before.resources]


def test_a_model_description_that_is_no_storable_text_is_refused_naming_the_model(dbt_artifacts):
    manifest, run_results = dbt_artifacts
    document = json.loads(manifest)
    document["nodes"]["model.tiny_shop.stg_orders"]["description"] = "bad\u0000nul"
    with pytest.raises(InvalidUpload) as refused:
        parse({"manifest": json.dumps(document).encode(), "run_results": run_results})
    assert (refused.value.field, refused.value.detail) == (
        "manifest", "manifest nodes['model.tiny_shop.stg_orders'].description: NUL characters (\\u0000) are not "
        "allowed.")  # fmt: skip


def test_swapped_artifacts_are_refused_as_swapped(dbt_artifacts):
    manifest, run_results = dbt_artifacts
    with pytest.raises(InvalidUpload, match="look swapped") as refused:
        parse({"manifest": run_results, "run_results": manifest})
    assert refused.value.field == "manifest"
    with pytest.raises(InvalidUpload, match="look swapped") as refused:
        parse({"manifest": manifest, "run_results": manifest})
    assert refused.value.field == "run_results"


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose writes are rolled back: the asset rows these tests write bypass the run log, which
    `rebuild` (tests/integration/test_run_log.py) expects to reproduce every read model from."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()


async def new_dbt_integration(integrations: IntegrationService) -> uuid.UUID:
    body = {"externalId": f"dbt-{uuid.uuid4().hex[:12]}", "name": "dbt", "source": "dbt_core", "configuration": {}}
    return (await integrations.create(OWNER, NewIntegration.model_validate(body))).id


async def sync(conn: asyncpg.Connection, integration_id: uuid.UUID, resources: Sequence[Resource]) -> None:
    """What a successful sync leaves in the assets read model: these resources live, everything else stale."""
    run_id = uuid.uuid4()
    await conn.execute("UPDATE assets SET deleted_at = now() WHERE integration_id = $1", integration_id)
    await conn.executemany(
        """
        INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes,
                            created_run_id, updated_run_id, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, '', $6, $7, $7, now(), now())
        ON CONFLICT (integration_id, asset_key) DO UPDATE
            SET attributes = EXCLUDED.attributes, updated_run_id = $7, deleted_at = NULL
        """,
        [(integration_id, r.key, r.kind, r.name, r.parent_key, r.attributes, run_id) for r in resources],
    )


async def object_ids(conn: asyncpg.Connection, integration_id: uuid.UUID, *keys: str) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT asset_key, object_id FROM assets WHERE integration_id = $1", integration_id)
    found = {r["asset_key"]: r["object_id"] for r in rows}
    return [found[key] for key in keys]


async def test_failing_tests_name_the_models_of_the_latest_results(conn, integrations, dbt_artifacts,
                                                                   dbt_artifacts_fixed):  # fmt: skip
    integration_id = await new_dbt_integration(integrations)
    snapshot = read(dbt_artifacts)
    key = {u: r.key for u, r in tables(snapshot).items()}
    assert await failing_tests(conn, integration_id) == FailingTests(warning=[], failing=[])  # before any sync
    await sync(conn, integration_id, snapshot.resources)
    warning = await object_ids(conn, integration_id, key["model.tiny_shop.stg_customers"])
    failing = await object_ids(conn, integration_id, key["model.tiny_shop.customer_orders"])
    assert await failing_tests(conn, integration_id) == FailingTests(warning=warning, failing=failing)
    await sync(conn, integration_id, read(dbt_artifacts_fixed).resources)
    assert await failing_tests(conn, integration_id) == FailingTests(warning=[], failing=[])


def model(name: str) -> Resource:
    return Resource(name, "table", name, "", {})


def result(name: str, status: str, on: str) -> Resource:
    return Resource(f"test.{name}", "test", name, on, {"status": status})


async def test_a_failure_or_error_outranks_warnings_and_stale_tests_or_models_count_for_nothing(conn, integrations):
    integration_id, other = await new_dbt_integration(integrations), await new_dbt_integration(integrations)
    await sync(conn, other, [model("m_warned"), result("elsewhere", "fail", "m_warned")])
    await sync(conn, integration_id, [model("m_gone"), result("old", "fail", "m_gone")])
    await sync(conn, integration_id, [
        model("m_both"), result("b1", "warn", "m_both"), result("b2", "fail", "m_both"),
        model("m_error"), result("e1", "error", "m_error"), result("e2", "pass", "m_error"),
        model("m_warned"), result("w1", "warn", "m_warned"), result("w2", "warn", "m_warned"),
        model("m_fine"), result("f1", "pass", "m_fine"), result("f2", "skipped", "m_fine"),
        model("m_also_warned"), result("a1", "warn", "m_also_warned"),
        result("orphan", "fail", "m_gone"),  # its model went stale: nothing to show
    ])  # fmt: skip
    assert await failing_tests(conn, integration_id) == FailingTests(
        warning=await object_ids(conn, integration_id, "m_also_warned", "m_warned"),
        failing=await object_ids(conn, integration_id, "m_both", "m_error"),
    )
