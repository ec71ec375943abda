"""dbt Core over the Secoda dialect with every service running, on the artifacts of a real `dbt build` of
tests/dbt/tiny_shop: upload (validated, nothing stored on a bad one), trigger (one sync at a time), the models as
resources with lineage, and failing_tests before and after the data is fixed."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_secoda import BASE, Secoda
from tests.e2e.test_secoda_imports import catalog, multipart, of, run_ended

pytestmark = pytest.mark.e2e
pytest_plugins = ("tests.dbt.support",)  # dbt_artifacts, dbt_artifacts_fixed: one real build each per session
DBT = "/api/v1/integration/dbt"


@pytest.fixture
async def secoda(stack: Stack) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Secoda(session, stack.url)


async def test_dbt_artifacts_sync_models_lineage_and_failing_tests(secoda: Secoda, dbt_artifacts,
                                                                   dbt_artifacts_fixed) -> None:  # fmt: skip
    manifest, run_results = dbt_artifacts
    status, created = await secoda.call("POST", BASE, json={"name": "tiny_shop", "type": "dbt_core"})
    assert status == 201
    dbt = created["id"]
    assert await secoda.call("GET", f"{DBT}/{dbt}/failing_tests/") == (200, {"warning": [], "failing": []})
    status, problem = await secoda.call("POST", f"{DBT}/{dbt}/trigger/")
    assert status == 400 and "upload" in problem["detail"], problem

    # Refused whole, nothing stored: swapped parts, one part missing, JSON instead of multipart.
    status, problem = await secoda.call("POST", f"{DBT}/{dbt}/upload_artifacts/",
                                        data=multipart(manifest=run_results, run_results=manifest))  # fmt: skip
    assert status == 400 and "swapped" in problem["detail"], problem
    status, problem = await secoda.call("POST", f"{DBT}/{dbt}/upload_artifacts", data=multipart(manifest=manifest))
    assert status == 400 and "run_results" in problem["detail"], problem
    status, problem = await secoda.call("POST", f"{DBT}/{dbt}/upload_artifacts/", json={"manifest": "x.json"})
    assert status == 400 and "multipart/form-data" in problem["detail"], problem
    assert (await secoda.call("POST", f"{DBT}/{dbt}/trigger/"))[0] == 400  # still nothing uploaded

    status, stored = await secoda.call("POST", f"{DBT}/{dbt}/upload_artifacts/",
                                       data=multipart(manifest=manifest, run_results=run_results,
                                                      catalog=b"{}"))  # an extra part is ignored  # fmt: skip
    assert status == 200, stored
    answers = await asyncio.gather(*(secoda.call("POST", f"{DBT}/{dbt}/trigger/") for _ in range(2)))
    assert sorted(status for status, _ in answers) == [200, 409], answers
    started = next(body for status, body in answers if status == 200)
    conflict = next(body for status, body in answers if status == 409)
    assert conflict["detail"] == "Integration sync already in progress"
    run = await run_ended(secoda, dbt, started["run_id"])
    assert run["status"] == "SUCCESS", run

    resources = await catalog(secoda, of(dbt))
    models = {r["title"]: r for r in resources if r["entity_type"] == "table"}
    assert set(models) == {"stg_customers", "stg_orders", "customer_orders", "raw_orders", "shop_customers"}, models
    assert models["customer_orders"]["description"] == "Orders and revenue per customer."
    assert (models["stg_orders"]["native_type"], models["customer_orders"]["native_type"]) == ("view", "table")
    columns = await catalog(secoda, {"operator": "and", "operands": [
        of(dbt), {"operator": "exact", "field": "parent_id", "value": models["customer_orders"]["id"]}]})  # fmt: skip
    assert {c["title"]: c["description"] for c in columns}["revenue"] == "Sum of order totals."
    status, lineage = await secoda.call("GET", f"/api/v1/lineage/manual/?to_entity={models['customer_orders']['id']}")
    assert [row["from_entity"] for row in lineage["results"]] == [models["stg_orders"]["id"]]  # model -> model
    status, lineage = await secoda.call("GET", f"/api/v1/lineage/manual/?to_entity={models['stg_customers']['id']}")
    assert [row["from_entity"] for row in lineage["results"]] == [models["shop_customers"]["id"]]  # source -> model

    status, found = await secoda.call("GET", f"{DBT}/{dbt}/failing_tests/")
    assert status == 200 and len(found["failing"]) == 1 and len(found["warning"]) == 1, found
    assert found["warning"] == [models["stg_customers"]["id"]]  # its not_null test is severity warn
    for entity in found["failing"] + found["warning"]:
        status, resource = await secoda.call("GET", f"/api/v1/resource/all/{entity}")
        assert status == 200 and resource["entity_type"] == "table", resource

    # The data is fixed and dbt built again: the next sync empties both lists; ids stay the same.
    manifest, run_results = dbt_artifacts_fixed
    assert (await secoda.call("POST", f"{DBT}/{dbt}/upload_artifacts/",
                              data=multipart(manifest=manifest, run_results=run_results)))[0] == 200  # fmt: skip
    status, started = await secoda.call("POST", f"{DBT}/{dbt}/trigger")
    assert status == 200
    assert (await run_ended(secoda, dbt, started["run_id"]))["status"] == "SUCCESS"
    assert await secoda.call("GET", f"{DBT}/{dbt}/failing_tests") == (200, {"warning": [], "failing": []})
    again = {r["title"]: r["id"] for r in await catalog(secoda, of(dbt)) if r["entity_type"] == "table"}
    assert {title: again[title] for title in models} == {title: r["id"] for title, r in models.items()}
    filtered = quote(json.dumps({"operator": "in", "field": "entity_type", "value": ["test"]}))
    status, tests = await secoda.call("GET", f"/api/v1/resource/catalog?filter={filtered}")
    assert (status, tests["count"]) == (200, 0), tests  # dbt tests are not catalog resources
