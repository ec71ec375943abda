"""Over HTTP: a PATCH that would send the stored source password to another server or user is refused."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import postgres_integration

pytestmark = pytest.mark.e2e


async def test_patching_the_target_without_credentials_is_a_422_and_the_integration_keeps_crawling(client, shop_dsn):
    external_id = f"cred-{uuid.uuid4().hex[:8]}"
    created = postgres_integration(shop_dsn, external_id)
    assert (await client.call("POST", "/api/integrations", json=created))[0] == 201
    path = f"/api/integrations/{external_id}"

    status, problem, headers = await client.call(
        "PATCH", path, json={"configuration": {"host": "localhost", "username": "someone-else"}}
    )
    assert status == 422 and headers["Content-Type"].startswith("application/problem+json")
    assert "configuration.host" in problem["detail"] and "configuration.username" in problem["detail"]
    assert "send `credentials`" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["credentials"]
    status, current, _ = await client.call("GET", path)
    assert status == 200
    assert {key: current["configuration"][key] for key in created["configuration"]} == created["configuration"]

    # A change that sends the credentials nowhere new needs no credentials.
    status, updated, _ = await client.call("PATCH", path, json={"configuration": {"excludeSchemas": ["hr"]}})
    assert status == 200 and updated["configuration"]["excludeSchemas"] == ["hr"]
    assert (await client.call("POST", f"{path}/run"))[0] == 202
    run = await client.wait_for_run(external_id, {"SUCCESS", "FAILED"})
    assert run["status"] == "SUCCESS", run
