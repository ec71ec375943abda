"""Every crawled platform through the running services, as a user drives it: the contract's fixture in its engine,
an integration created over HTTP, runs to SUCCESS with exact counts, the integration in every dialect's listing."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Client
from tests.sources.contract import ContractPlatform, counted_assets, require
from tests.sources.platforms import all_platforms

pytestmark = pytest.mark.e2e


async def _secoda_names(client: Client, secoda_type: str) -> list[str]:
    """The names of every integration Secoda lists under `secoda_type`, page by page."""
    names: list[str] = []
    page = 1
    while True:
        path = f"/api/v1/integration/integrations?type={secoda_type}&page={page}"
        status, listed, _ = await client.call("GET", path, bearer=True)
        assert status == 200, listed
        names += [i["name"] for i in listed["results"]]
        if listed["meta"]["next_page"] is None:
            return names
        page += 1


async def _run(client: Client, external_id: str) -> dict:
    status, _, _ = await client.call("POST", f"/api/integrations/{external_id}/run")
    assert status == 202
    run = await client.wait_for_run(external_id, {"SUCCESS", "FAILED", "CANCELLED"}, timeout=90)
    assert run["status"] == "SUCCESS", run
    return run


@pytest.mark.parametrize("platform", all_platforms(), ids=lambda p: p.name)
async def test_a_platform_crawls_through_the_services_and_shows_in_every_dialect(
    client: Client, platform: ContractPlatform
) -> None:
    require(platform)
    await platform.create_fixture()
    external_id = f"e2e-{platform.name}"
    await client.call("DELETE", f"/api/integrations/{external_id}")  # a previous session's, if any
    status, created, _ = await client.call("POST", "/api/integrations", json={
        "externalId": external_id, "name": f"Contract {platform.name}", "source": platform.spec.source.value,
        "configuration": platform.configuration(), "credentials": platform.credentials(),
        "failSafeThreshold": 100,  # the fixture is small: its change is a large share of it (the fail-safe has tests)
    })  # fmt: skip
    assert status == 201, created
    assert created["source"] == platform.spec.source.value

    first = await _run(client, external_id)
    total = counted_assets(platform.expected)
    assert (first["assetsProcessed"], first["assetsCreated"], first["assetsUpdated"], first["assetsDeleted"]) == (
        total, total, 0, 0)  # fmt: skip

    # Secoda lists it under its type (its name there, or ours where Secoda has none).
    assert f"Contract {platform.name}" in await _secoda_names(client, platform.spec.source.value)

    await platform.change_fixture()
    changed = await _run(client, external_id)
    assert (changed["assetsCreated"], changed["assetsUpdated"], changed["assetsDeleted"]) == platform.expected.changed
    assert (await client.call("DELETE", f"/api/integrations/{external_id}"))[0] == 204
