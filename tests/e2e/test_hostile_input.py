"""Hostile input never reaches a 500: text PostgreSQL cannot store, and integers beyond every bound."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import postgres_integration

pytestmark = pytest.mark.e2e


async def count_integrations(db) -> int:
    return await db.fetchval("SELECT count(*) FROM integrations")


NUL = "\u0000"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/integrations", {"name": f"a{NUL}b"}, "name"),
        ("POST", "/api/integrations", {"configuration": {"database": f"shop{NUL}"}}, "configuration.database"),
        (
            "POST",
            "/api/integrations",
            {"configuration": {"excludeSchemas": ["ok", f"pg_{NUL}"]}},
            "configuration.excludeSchemas.1",
        ),
        ("POST", "/api/integrations", {"credentials": {"password": f"x{NUL}"}}, "credentials.password"),
        ("POST", "/api/integrations", {"owningTeamExternalId": NUL}, "owningTeamExternalId"),
        ("PATCH", "/api/integrations/limits-e2e", {"name": NUL}, "name"),
        ("PATCH", "/api/integrations/limits-e2e", {"configuration": {"host": f"h{NUL}"}}, "configuration.host"),
        ("POST", "/api/teams", {"externalId": "nul-team", "name": f"N{NUL}"}, "name"),
        ("POST", "/api/api-keys", {"name": f"k{NUL}"}, "name"),
        (
            "POST",
            "/api/api-keys",
            {"name": "k", "teams": [{"teamExternalId": f"t{NUL}", "permissions": ["INGESTION_VIEW"]}]},
            "teams.0.teamExternalId",
        ),
    ],
)
async def test_nul_characters_in_a_body_are_refused_naming_the_field(client, db, shop_dsn, method, path, body, field):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "limits-e2e"))
    if path == "/api/integrations":
        base = postgres_integration(shop_dsn, f"nul-{uuid.uuid4().hex[:8]}")
        body = base | {k: (base[k] | v if isinstance(v, dict) and k in base else v) for k, v in body.items()}
    before = await count_integrations(db)
    status, problem, headers = await client.call(method, path, json=body)
    assert status in (400, 422), problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert [e["field"] for e in problem["errors"]] == [field] and "NUL" in problem["detail"]
    assert await count_integrations(db) == before


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/api/integrations?owningTeamExternalId=a%00b", "owningTeamExternalId"),
        ("GET", "/api/integrations?source=postgres%00", "source"),
        ("GET", "/api/integrations/limits-e2e/runs?status=%00", "status"),
        ("GET", "/api/integrations/limits%00-e2e", "externalId"),
        ("PATCH", "/api/integrations/limits%00-e2e", "externalId"),
        ("DELETE", "/api/integrations/%00", "externalId"),
        ("GET", "/api/integrations/limits%00-e2e/runs", "externalId"),
        ("GET", "/api/integrations/limits%00-e2e/runs/latest", "externalId"),
        ("GET", f"/api/integrations/limits%00-e2e/runs/{uuid.uuid4()}", "externalId"),
        ("POST", "/api/integrations/limits%00-e2e/run", "externalId"),
        ("POST", "/api/integrations/limits%00-e2e/cancel", "externalId"),
        ("DELETE", "/api/api-keys/%00", "keyId"),
    ],
)
async def test_nul_characters_in_query_and_path_parameters_are_a_400_naming_them(client, shop_dsn, method, path, field):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "limits-e2e"))
    status, problem, headers = await client.call(method, path, json={"name": "x"} if method == "PATCH" else None)
    assert status == 400, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert [e["field"] for e in problem["errors"]] == [field]


@pytest.mark.parametrize(
    "path",
    [
        "/api/integrations?p=" + "9" * 30,
        "/api/integrations?p=" + str(2**63 // 50 + 1),
        "/api/integrations/limits-e2e/runs?p=" + str(2**63 // 200 + 1) + "&limit=200",
        "/api/integrations/limits-e2e/runs?limit=" + "9" * 30,
        "/api/integrations/limits-e2e/runs?p=" + "9" * 5000,
    ],
)
async def test_huge_integers_are_a_400_saying_the_bounds(client, shop_dsn, path):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "limits-e2e"))
    status, problem, headers = await client.call("GET", path)
    assert status == 400, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "must be between" in problem["detail"] and problem["errors"][0]["field"] in ("p", "limit")
