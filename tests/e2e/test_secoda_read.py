"""Secoda's read side over HTTP: the resource catalog, a resource by id and lineage, as a team's key browses them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.api.secoda import WORKSPACE_ID
from services.core.objects import object_id
from tests.e2e.conftest import ADMIN_KEY, Stack
from tests.e2e.test_secoda import BASE, Secoda

pytestmark = pytest.mark.e2e

CATALOG = "/api/v1/resource/catalog"
CREATED = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)


@pytest.fixture
async def secoda(stack: Stack) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Secoda(session, stack.url)


async def team_key(secoda: Secoda) -> tuple[str, str]:
    """A new team and a key that sees only it: (team externalId, key)."""
    team = f"read-{uuid.uuid4().hex[:8]}"
    assert (await secoda.call("POST", "/api/teams", json={"externalId": team, "name": team}))[0] == 201
    grant = [{"teamExternalId": team, "permissions": ["INGESTION_VIEW", "INGESTION_EDIT"]}]
    status, issued = await secoda.call("POST", "/api/api-keys", json={"name": team, "teams": grant})
    assert status == 201, issued
    return team, issued["key"]


async def synced(db: asyncpg.Connection, integration_id: str, assets: list[tuple[str, str, str, str, dict]]) -> None:
    """Assets as an import leaves them: (key, kind, title, parent key, attributes)."""
    run = uuid.uuid4()
    await db.executemany(
        """INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes,
                               created_run_id, updated_run_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, 'f', $6::text::jsonb, $7, $7, $8, $8)""",
        [(uuid.UUID(integration_id), key, kind, name, parent, json.dumps(attributes), run, CREATED)
         for key, kind, name, parent, attributes in assets],
    )  # fmt: skip


async def test_a_team_key_browses_its_resources_and_lineage(secoda: Secoda, db: asyncpg.Connection) -> None:
    team, key = await team_key(secoda)
    status, mine = await secoda.call("POST", BASE, key=key, json={"name": "Docs", "type": "custom", "teams": [team]})
    assert status == 201, mine
    _, hidden = await secoda.call("POST", BASE, json={"name": "Admin's", "type": "custom"})
    table = {"databuilder_id": "w.s.orders", "description": "Orders", "native_type": "table"}
    column = {"databuilder_id": "w.s.orders.id"}
    await synced(db, mine["id"], [("w", "database", "w", "", {}), ("w.s.orders", "table", "orders", "w", table),
                                  ("w.s.orders.id", "column", "id", "w.s.orders", column)])  # fmt: skip
    await synced(db, hidden["id"], [("x", "database", "x", "", {})])
    database, orders = (str(object_id(uuid.UUID(mine["id"]), k)) for k in ("w", "w.s.orders"))
    await db.execute(
        """INSERT INTO lineage_edges (integration_id, from_integration_id, from_key, to_integration_id, to_key, run_id,
                                      created_at, updated_at) VALUES ($1, $1, 'w.s.orders', $1, 'w.s.orders.id', $2,
                                      $3, $3)""",
        uuid.UUID(mine["id"]), uuid.uuid4(), CREATED,
    )  # fmt: skip

    tables = {"operator": "and", "operands": [
        {"operator": "exact", "field": "integration_id", "value": mine["id"]},
        {"operator": "in", "field": "entity_type", "value": ["table"]},
    ]}  # fmt: skip
    for path in (CATALOG, CATALOG + "/"):  # both slash forms, no redirect
        status, page = await secoda.call("GET", path, key=key, params={"filter": json.dumps(tables)})
        assert status == 200 and (page["count"], page["total_pages"], page["links"]) == (
            1, 1, {"next": None, "previous": None}), page  # fmt: skip
    expected = {"id": orders, "entity_type": "table", "native_type": "table", "title": "orders",
                "description": "Orders", "definition": None, "parent": database, "integration": mine["id"],
                "databuilder_id": "w.s.orders", "external_updated_at": None, "created_at": "2026-02-01T08:30:00Z",
                "updated_at": "2026-02-01T08:30:00Z"}  # fmt: skip
    assert page["results"] == [expected]
    assert await secoda.call("GET", f"/api/v1/resource/all/{orders}", key=key) == (200, expected)
    _, everything = await secoda.call("GET", CATALOG, key=key)
    assert {r["title"] for r in everything["results"]} == {"w", "orders", "id"}  # not the admin's integration
    assert [r["id"] for r in everything["results"]] == sorted(r["id"] for r in everything["results"])  # same time

    status, lineage = await secoda.call("GET", "/api/v1/lineage/manual/", key=key, params={"from_entity": orders})
    edge = lineage["results"][0]
    assert status == 200 and lineage["count"] == 1 and edge["to_entity"] == edge["to_entity_id"] != orders
    assert (edge["from_entity"], edge["direction"], edge["is_manual"], edge["workspace_id"]) == (
        orders, "DOWNSTREAM", False, WORKSPACE_ID)  # fmt: skip
    for params in ({"to_entity": orders}, {"from_entity": "not-a-uuid"}):
        status, none = await secoda.call("GET", "/api/v1/lineage/manual", key=key, params=params)
        assert (status, none["count"], none["results"]) == (200, 0, [])

    hidden_db = str(object_id(uuid.UUID(hidden["id"]), "x"))
    for path in (f"/api/v1/resource/all/{hidden_db}", "/api/v1/resource/all/not-a-uuid/"):
        assert (await secoda.call("GET", path, key=key))[0] == 404
    assert (await secoda.call("GET", f"/api/v1/resource/all/{hidden_db}"))[0] == 200  # the admin's key sees it


async def test_bad_filters_and_pages_are_refused_and_every_path_needs_a_key(secoda: Secoda) -> None:
    for raw, field in [("{", "filter"), ('{"operator": "or", "operands": []}', "filter.operator"),
                       ('{"operator": "exact", "field": "title", "value": "a\\u0000b"}', "filter")]:  # fmt: skip
        status, problem = await secoda.call("GET", CATALOG, params={"filter": raw})
        assert status == 400 and problem["errors"][0]["field"] == field, problem
    for page in ("0", "x", "2"):
        status, problem = await secoda.call("GET", CATALOG, params={"filter": json.dumps(
            {"operator": "exact", "field": "integration_id", "value": str(uuid.uuid4())}), "page": page})  # fmt: skip
        assert (status, problem["detail"]) == (404, "Invalid page.")
    for path in (CATALOG, f"/api/v1/resource/all/{uuid.uuid4()}", "/api/v1/lineage/manual/"):
        for key in (None, "not-a-key"):
            assert (await secoda.call("GET", path, key=key))[0] == 401
    assert (await secoda.call("GET", CATALOG, key=ADMIN_KEY))[0] == 200
