"""Secoda metadata imports over HTTP with every service running: CSV and JSONL uploads are validated whole, stored,
imported by a run (queued per integration), and what they produced is read back through the resource catalog,
resource by id and manual lineage."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_KEY, Stack
from tests.e2e.test_secoda import BASE, Secoda
from tests.support import eventually

pytestmark = pytest.mark.e2e

HEADER = "database,schema,name,description,is_view,last_updated_time,col_name,col_description,col_type,sort_order\n"
ORDERS_CSV = HEADER + (
    'shop,public,orders,"All orders, one row each",false,1700000000,ID,Order id,bigint,1\n'
    'shop,public,orders,"All orders, one row each",false,1700000000,amount,"Total, in cents","numeric(12,2)",2\n'
    "shop,public,customers,People,false,None,id,Customer id,bigint,1\n"
    "shop,public,recent,Last week,true,,order_id,,bigint,0\n"
)


@pytest.fixture
async def secoda(stack: Stack) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Secoda(session, stack.url)


def multipart(**files: str | bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, content in files.items():
        form.add_field(name, content.encode() if isinstance(content, str) else content, filename=f"{name}.txt",
                       content_type="application/octet-stream")  # fmt: skip
    return form


async def custom(secoda: Secoda, name: str = "Uploads") -> str:
    status, created = await secoda.call("POST", BASE, json={"name": name, "type": "custom"})
    assert status == 201, created
    return str(created["id"])


async def imported(secoda: Secoda, integration_id: str, path: str, timeout: float = 60, **files: str | bytes) -> dict:
    """Upload, then wait until the import's run ended; returns the run (our dialect's view of it)."""
    status, accepted = await secoda.call("POST", f"{BASE}/{integration_id}/{path}", data=multipart(**files))
    assert status == 200, accepted
    return await run_ended(secoda, integration_id, accepted["run_id"], timeout)


async def run_ended(secoda: Secoda, integration_id: str, run_id: str | None, timeout: float = 60) -> dict:
    async def probe() -> dict | None:
        async with secoda.session.get(f"{secoda.url}/api/integrations/{integration_id}/runs",
                                      headers={"x-api-key": ADMIN_KEY}) as response:  # fmt: skip
            runs = await response.json()
        ended = [r for r in runs if r["status"] in ("SUCCESS", "FAILED", "CANCELLED") and
                 (run_id is None or r["ingestionRunId"] == run_id)]  # fmt: skip
        return ended[0] if ended else None

    return await eventually(probe, timeout=timeout)


async def catalog(secoda: Secoda, filter_: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    page = 1
    while True:
        status, body = await secoda.call("GET", f"/api/v1/resource/catalog?filter={quote(json.dumps(filter_))}"
                                                f"&page={page}")  # fmt: skip
        assert status == 200, body
        results += body["results"]
        if body["links"]["next"] is None:
            return results
        page += 1


def of(integration_id: str) -> dict[str, Any]:
    return {"operator": "exact", "field": "integration_id", "value": integration_id}


async def test_a_csv_upload_is_a_full_snapshot_with_stable_ids(secoda: Secoda) -> None:
    integration_id = await custom(secoda)
    run = await imported(secoda, integration_id, "import_metadata", file=ORDERS_CSV)
    assert run["status"] == "SUCCESS", run
    listed = await catalog(secoda, of(integration_id))
    assert sorted((r["entity_type"], r["title"]) for r in listed) == [
        ("column", "amount"), ("column", "id"), ("column", "id"), ("column", "order_id"), ("database", "shop"),
        ("schema", "public"), ("table", "customers"), ("table", "orders"), ("table", "recent")]  # fmt: skip
    first = {(r["entity_type"], r["title"]): r for r in listed if r["entity_type"] != "column"}
    orders = first["table", "orders"]
    assert (orders["description"], orders["native_type"], orders["integration"]) == (
        "All orders, one row each", "table", integration_id)  # fmt: skip
    assert first["table", "recent"]["native_type"] == "view"
    status, got = await secoda.call("GET", f"/api/v1/resource/all/{orders['id']}")
    assert (status, got) == (200, orders)
    columns = await catalog(secoda, {"operator": "and", "operands": [
        of(integration_id), {"operator": "exact", "field": "parent_id", "value": orders["id"]}]})  # fmt: skip
    assert sorted(c["title"] for c in columns) == ["amount", "id"]  # col_name lower-cased

    # The next upload lacks 'customers' and changes a description: it goes stale, the rest keep their ids.
    changed = ORDERS_CSV.replace("All orders, one row each", "Every order").replace(
        "shop,public,customers,People,false,None,id,Customer id,bigint,1\n", "")  # fmt: skip
    run = await imported(secoda, integration_id, "import_metadata", file=changed)
    assert run["status"] == "SUCCESS", run
    second = {(r["entity_type"], r["title"], r["parent"]): r for r in await catalog(secoda, of(integration_id))}
    assert ("table", "customers") not in {(t, n) for t, n, _ in second}
    assert second["table", "orders", orders["parent"]]["id"] == orders["id"]
    assert second["table", "orders", orders["parent"]]["description"] == "Every order"
    assert (await secoda.call("GET", f"/api/v1/resource/all/{first['table', 'customers']['id']}"))[0] == 404


async def test_a_bad_upload_is_refused_whole_naming_part_line_and_field(secoda: Secoda) -> None:
    integration_id = await custom(secoda)
    bad = ORDERS_CSV + "shop,public,,No name,false,,x,,text,1\n"
    status, problem = await secoda.call("POST", f"{BASE}/{integration_id}/import_metadata", data=multipart(file=bad))
    assert status == 400 and "file" in problem["detail"] and "line 6" in problem["detail"], problem
    assert "name" in problem["detail"]
    # A file path sent as JSON (what Secoda's docs print, and pysecoda sends) is told what to send instead.
    status, problem = await secoda.call("POST", f"{BASE}/{integration_id}/import_metadata",
                                        json={"file": "path/to/your/file.csv"})  # fmt: skip
    assert status == 400 and "multipart/form-data" in problem["detail"] and "'file'" in problem["detail"], problem
    status, problem = await secoda.call("POST", f"{BASE}/{integration_id}/import_jsonl_metadata",
                                        data=multipart(lineages_file="{}"))  # fmt: skip
    assert status == 400 and "resources_file" in problem["detail"], problem
    # A part header that is not valid (a name with control characters): the body cannot be read, a 400.
    boundary = "b0undary"
    raw = (f'--{boundary}\r\nContent-Disposition: form-data; name="\x0e\xf6"\r\n\r\nx\r\n--{boundary}--\r\n').encode()
    form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, problem = await secoda.call("POST", f"{BASE}/{integration_id}/import_metadata", data=raw, headers=form)
    assert status == 400 and "multipart" in problem["detail"], problem
    # Nothing was stored or started.
    async with secoda.session.get(f"{secoda.url}/api/integrations/{integration_id}/runs",
                                  headers={"x-api-key": ADMIN_KEY}) as response:  # fmt: skip
        assert await response.json() == []
    assert (await secoda.call("POST", f"{BASE}/{uuid.uuid4()}/import_metadata", data=multipart(file=ORDERS_CSV)))[
        0] == 404  # fmt: skip
    status, dbt = await secoda.call("POST", BASE, json={"type": "dbt_core"})
    status, problem = await secoda.call("POST", f"{BASE}/{dbt['id']}/import_metadata", data=multipart(file=ORDERS_CSV))
    assert status == 400 and "custom" in problem["detail"], problem


async def test_uploads_queue_and_are_imported_in_order(secoda: Secoda) -> None:
    integration_id = await custom(secoda)
    versions = [ORDERS_CSV.replace("All orders, one row each", f"version {n}") for n in range(4)]
    answers = []
    for version in versions:  # back to back: later ones wait for the run of the one before, never a 409
        status, accepted = await secoda.call("POST", f"{BASE}/{integration_id}/import_metadata",
                                             data=multipart(file=version))  # fmt: skip
        assert status == 200, accepted
        answers.append(accepted)

    async def all_done() -> list[dict] | None:
        async with secoda.session.get(f"{secoda.url}/api/integrations/{integration_id}/runs",
                                      headers={"x-api-key": ADMIN_KEY}) as response:  # fmt: skip
            runs = await response.json()
        return runs if len(runs) == 4 and all(r["status"] == "SUCCESS" for r in runs) else None

    runs = await eventually(all_done, timeout=90)
    assert len({r["ingestionRunId"] for r in runs}) == 4
    tables = [r for r in await catalog(secoda, of(integration_id)) if r["title"] == "orders"]
    assert [t["description"] for t in tables] == ["version 3"]


async def test_jsonl_with_lineage_to_another_integrations_tables(secoda: Secoda) -> None:
    # Names of its own: every integration's tables of that name would match (each gets an edge, as the spec says).
    tag = uuid.uuid4().hex[:8]
    orders, recent, customers = f"orders_{tag}", f"recent_{tag}", f"customers_{tag}"
    csv = ORDERS_CSV.replace("orders,", f"{orders},").replace("recent,", f"{recent},").replace(
        "customers,", f"{customers},")  # fmt: skip
    warehouse = await custom(secoda, "Warehouse")
    assert (await imported(secoda, warehouse, "import_metadata", file=csv))["status"] == "SUCCESS"
    reports = await custom(secoda, "BI")
    resources = "\n".join(json.dumps(line) for line in [
        {"entity_type": "dashboard_group", "databuilder_id": "bi", "title": "BI"},
        {"entity_type": "dashboard", "databuilder_id": "bi.sales", "parent_databuilder_id": "bi", "title": "Sales",
         "description": "Weekly sales", "group": "finance"},
        {"entity_type": "chart", "databuilder_id": "bi.sales.revenue", "parent_databuilder_id": "bi.sales",
         "title": "Revenue", "product": "looker"},
    ])  # fmt: skip
    lineage = "\n".join(json.dumps(line) for line in [
        {"from_identifier": {"type": "external_table", "cluster": "x", "database": "SHOP", "schema": "public",
                             "table": orders.upper()},
         "to_identifier": {"type": "internal_resource", "databuilder_id": "bi.sales"}},
        {"from_identifier": {"type": "tables_from_query",
                             "sql": f"WITH r AS (SELECT * FROM public.{recent}) "
                                    f"SELECT * FROM r JOIN {customers} USING (id)"},
         "to_identifier": {"type": "internal_resource", "databuilder_id": "bi.sales.revenue"}},
        {"from_identifier": {"type": "internal_resource", "databuilder_id": "bi.sales"},
         "to_identifier": {"type": "internal_resource", "databuilder_id": "bi.sales.revenue"}},
    ])  # fmt: skip
    run = await imported(secoda, reports, "import_jsonl_metadata", resources_file=resources, lineages_file=lineage)
    assert run["status"] == "SUCCESS", run
    mine = {r["title"]: r for r in await catalog(secoda, of(reports))}
    theirs = {r["title"]: r for r in await catalog(secoda, of(warehouse)) if r["entity_type"] == "table"}
    assert mine["Sales"]["parent"] == mine["BI"]["id"] and mine["Sales"]["description"] == "Weekly sales"
    status, into_revenue = await secoda.call("GET", f"/api/v1/lineage/manual/?to_entity={mine['Revenue']['id']}")
    assert status == 200, into_revenue
    sources = {row["from_entity"] for row in into_revenue["results"]}
    # 'recent' and 'customers' read by the query (the CTE name is not a table), and the dashboard.
    assert sources == {theirs[recent]["id"], theirs[customers]["id"], mine["Sales"]["id"]}, into_revenue
    status, out_of_orders = await secoda.call("GET", f"/api/v1/lineage/manual/?from_entity={theirs[orders]['id']}")
    assert [row["to_entity"] for row in out_of_orders["results"]] == [mine["Sales"]["id"]]
    assert out_of_orders["results"][0]["direction"] == "DOWNSTREAM"

    # Deleting the integration takes its resources and its lineage out of the read side.
    assert (await secoda.call("DELETE", f"{BASE}/{reports}"))[0] == 204
    assert await catalog(secoda, of(reports)) == []
    status, gone = await secoda.call("GET", f"/api/v1/lineage/manual/?from_entity={theirs[orders]['id']}")
    assert (status, gone["count"]) == (200, 0)
    assert (await secoda.call("GET", f"/api/v1/resource/all/{mine['Sales']['id']}"))[0] == 404


async def test_an_import_can_be_cancelled_and_the_next_one_still_runs(secoda: Secoda) -> None:
    integration_id = await custom(secoda)
    status, accepted = await secoda.call("POST", f"{BASE}/{integration_id}/import_metadata",
                                         data=multipart(file=ORDERS_CSV))  # fmt: skip
    assert status == 200
    await asyncio.sleep(0)
    async with secoda.session.post(f"{secoda.url}/api/integrations/{integration_id}/cancel",
                                   headers={"x-api-key": ADMIN_KEY}) as response:  # fmt: skip
        assert response.status in (200, 202, 204), await response.text()
    first = await run_ended(secoda, integration_id, accepted["run_id"])
    assert first["status"] in ("CANCELLED", "SUCCESS")
    assert (await imported(secoda, integration_id, "import_metadata", file=ORDERS_CSV))["status"] == "SUCCESS"


async def test_a_key_that_may_only_view_is_refused_before_its_upload_is_read(secoda: Secoda) -> None:
    team = f"viewers-{uuid.uuid4().hex[:8]}"
    assert (await secoda.call("POST", "/api/teams", json={"externalId": team, "name": team}))[0] == 201
    grant = [{"teamExternalId": team, "permissions": ["INGESTION_VIEW"]}]
    status, issued = await secoda.call("POST", "/api/api-keys", json={"name": team, "teams": grant})
    assert status == 201, issued
    status, created = await secoda.call("POST", BASE, json={"type": "custom", "teams": [team]})
    assert status == 201, created
    viewer = issued["key"]
    assert (await secoda.call("GET", f"{BASE}/{created['id']}", key=viewer))[0] == 200
    # A body far larger than the upload limit: the answer comes from the permission check, not from reading it.
    huge = b"x" * (129 * 1024 * 1024)
    status, problem = await secoda.call("POST", f"{BASE}/{created['id']}/import_metadata", key=viewer,
                                        data=multipart(file=huge))  # fmt: skip
    assert status == 403 and "INGESTION_EDIT" in problem["detail"], problem
    status, problem = await secoda.call("POST", f"/api/v1/integration/dbt/{created['id']}/upload_artifacts/",
                                        data=multipart(manifest=b"{}", run_results=b"{}"))  # fmt: skip
    assert status == 400 and "dbt_core" in problem["detail"], problem
    status, problem = await secoda.call("POST", f"{BASE}/{created['id']}/import_metadata", data=multipart(file=huge))
    assert status == 400 and "larger than 128 MiB" in problem["detail"], problem
