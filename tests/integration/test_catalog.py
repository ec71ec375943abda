"""The Secoda read side over the real store: resources and lineage edges as keys see them, pages, filters, plans."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.core.access import AccessService, NewTeam
from services.core.catalog import CatalogFilter, CatalogService, Resource, parse_filter
from services.core.errors import NotFound
from services.core.model import Integration, Principal
from services.core.objects import object_id
from services.core.store import access as access_store
from services.core.store import catalog as store
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RUN = uuid.uuid4()


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


async def put(runtime, integration: Integration, assets: list[tuple], start: int = 0, deleted: bool = False) -> None:
    """Assets as a sync leaves them: (key, kind, name, parent_key, attributes), created one second apart."""
    rows = [(integration.id, key, kind, name, parent, "f", attributes, RUN, RUN, at(start + i), at(start + i + 1),
             at(start + i + 2) if deleted else None)
            for i, (key, kind, name, parent, attributes) in enumerate(assets)]  # fmt: skip
    async with runtime.pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes,
                                   created_run_id, updated_run_id, created_at, updated_at, deleted_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)""",
            rows,
        )


async def link(runtime, asserted_by: Integration, ends: list[tuple[Integration, str, Integration, str]],
               start: int = 0) -> list[uuid.UUID]:  # fmt: skip
    """Lineage edges the integration asserted, created one second apart; returns their ids."""
    rows = [(asserted_by.id, a.id, a_key, b.id, b_key, RUN, at(start + i), at(start + i))
            for i, (a, a_key, b, b_key) in enumerate(ends)]  # fmt: skip
    async with runtime.pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO lineage_edges (integration_id, from_integration_id, from_key, to_integration_id, to_key,
                                          run_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            rows,
        )
        found = await conn.fetch(
            "SELECT id FROM lineage_edges WHERE integration_id = $1 ORDER BY created_at, id", asserted_by.id
        )
    return [r["id"] for r in found]


@pytest.fixture
def catalog(runtime) -> CatalogService:
    return CatalogService(runtime)


@pytest.fixture
async def team_key(runtime):
    """A new team and a key that sees only it: (team externalId, principal)."""

    async def make() -> tuple[str, Principal]:
        team = f"cat-{uuid.uuid4().hex[:8]}"
        await AccessService(runtime).create_team(OWNER, NewTeam(externalId=team, name=team))
        async with runtime.pool.acquire() as conn:
            team_id = (await access_store.team_ids_by_external_id(conn, [team]))[team]
        return team, Principal(key_id=uuid.uuid4(), name=team, org_owner=False,
                               team_permissions={team_id: frozenset({"INGESTION_VIEW"})})  # fmt: skip

    return make


def where(*operands: tuple[str, str, Any]) -> CatalogFilter:
    leaves = [{"operator": op, "field": field, "value": value} for op, field, value in operands]
    return parse_filter(json.dumps({"operator": "and", "operands": leaves}))


async def everything(catalog: CatalogService, principal: Principal, filtered: CatalogFilter) -> list[Resource]:
    found, offset = [], 0
    while True:
        total, page = await catalog.page(principal, filtered, offset, 50)
        found += page
        offset += 50
        if offset >= total:
            assert len(found) == total
            return found


# A PostgreSQL crawl (kinds and attributes as the connector reports them) and a dbt test below a table.
CRAWLED = [
    ("db", "database", "shop", "", {}),
    ("db/public", "schema", "public", "db", {"comment": "main schema"}),
    ("db/public/orders", "table", "orders", "db/public", {"type": "table", "comment": "all orders"}),
    ("db/public/orders/id", "column", "id", "db/public/orders", {"dataType": "integer", "comment": None}),
    ("db/public/open", "view", "open", "db/public", {"type": "view", "comment": None, "definition": "SELECT 1"}),
    ("db/public/totals", "materialized_view", "totals", "db/public", {"definition": "SELECT 2"}),
    ("db/public/remote", "foreign_table", "remote", "db/public", {}),
    ("db/public/orders/not_null_id", "test", "not_null_id", "db/public/orders", {"status": "fail"}),
]
# An import: the user's own identities, descriptions over comments, native types of any name.
IMPORTED = [
    ("w.s.t", "table", "t", "", {"databuilder_id": "w.s.t", "description": "Described", "comment": "not shown",
                                 "native_type": "dbt model", "definition": "# T",
                                 "external_updated_at": "2025-12-01T10:00:00+00:00"}),
    ("w.s.t.c", "column", "c", "w.s.t", {"databuilder_id": "w.s.t.c", "description": "", "type": "int"}),
    ("board", "dashboard", "Board", "", {"databuilder_id": "board", "group": "sales"}),
]  # fmt: skip


async def test_assets_show_as_resources_with_secodas_fields(runtime, make_integration, catalog):
    crawled, imported = await make_integration(), await make_integration()
    await put(runtime, crawled, CRAWLED)
    await put(runtime, imported, IMPORTED, start=100)

    def rid(integration: Integration, key: str) -> uuid.UUID:
        return object_id(integration.id, key)

    orders = await catalog.get(OWNER, str(rid(crawled, "db/public/orders")))
    assert orders == Resource(
        id=rid(crawled, "db/public/orders"), entity_type="table", native_type="table", title="orders",
        description="all orders", definition=None, parent=rid(crawled, "db/public"), integration=crawled.id,
        databuilder_id="db/public/orders", external_updated_at=None, created_at=at(2), updated_at=at(3),
    )  # fmt: skip
    shown = {key: await catalog.get(OWNER, str(rid(crawled, key))) for key, *_ in CRAWLED[:-1]}
    assert {key: (r.entity_type, r.native_type) for key, r in shown.items()} == {
        "db": ("database", None), "db/public": ("schema", None), "db/public/orders": ("table", "table"),
        "db/public/orders/id": ("column", None), "db/public/open": ("table", "view"),
        "db/public/totals": ("table", "materialized_view"), "db/public/remote": ("table", "foreign_table"),
    }  # fmt: skip
    assert shown["db"].parent is None and shown["db/public"].description == "main schema"
    assert shown["db/public/open"].definition == "SELECT 1" and shown["db/public/orders/id"].description is None
    for missing in (str(rid(crawled, "db/public/orders/not_null_id")), "not-a-uuid", ""):  # a dbt test is no resource
        with pytest.raises(NotFound):
            await catalog.get(OWNER, missing)

    table = await catalog.get(OWNER, str(rid(imported, "w.s.t")))
    assert (table.entity_type, table.native_type, table.title, table.description, table.definition) == (
        "table", "dbt model", "t", "Described", "# T")  # fmt: skip
    assert (table.parent, table.databuilder_id, table.external_updated_at) == (
        None, "w.s.t", "2025-12-01T10:00:00+00:00")  # fmt: skip
    column = await catalog.get(OWNER, str(rid(imported, "w.s.t.c")))
    assert (column.parent, column.description, column.native_type) == (table.id, "", None)  # "" is a description
    board = await catalog.get(OWNER, str(rid(imported, "board")))
    assert (board.entity_type, board.native_type, board.parent) == ("dashboard", None, None)

    listed = await everything(catalog, OWNER, where(("in", "integration_id", [str(crawled.id), str(imported.id)])))
    assert [r.id for r in listed] == [rid(crawled, k) for k, *_ in CRAWLED[:-1]] + [rid(imported, k) for k, *_ in
                                                                                     IMPORTED]  # fmt: skip
    assert listed[2] == orders


async def test_pages_of_fifty_cover_every_resource_once_in_creation_then_id_order(runtime, make_integration, catalog):
    integration = await make_integration()
    assets = [(f"t{i:03}", "table", f"t{i:03}", "", {}) for i in range(120)]
    await put(runtime, integration, assets[:60])
    await put(runtime, integration, assets[60:], start=59)  # the 60th and 61st share a creation time
    async with runtime.pool.acquire() as conn:  # ties: ten more created at the same instant
        await conn.execute("UPDATE assets SET created_at = $2 WHERE integration_id = $1 AND asset_key LIKE 't09%'",
                           integration.id, at(500))  # fmt: skip
    await put(runtime, integration, [("gone", "table", "gone", "", {})], start=1, deleted=True)
    await put(runtime, integration, [("check", "test", "check", "", {})], start=2)
    filtered = where(("exact", "integration_id", str(integration.id)))

    pages = [await catalog.page(OWNER, filtered, offset, 50) for offset in (0, 50, 100, 150)]
    assert [(total, len(page)) for total, page in pages] == [(120, 50), (120, 50), (120, 20), (120, 0)]
    listed = [r for _, page in pages for r in page]
    assert [(r.created_at, r.id) for r in listed] == sorted((r.created_at, r.id) for r in listed)
    assert {r.title for r in listed} == {title for _, _, title, _, _ in assets}
    assert {r.title for r in listed[-10:]} == {f"t09{i}" for i in range(10)}  # the ties, ordered by id


async def test_filters_narrow_by_integration_parent_type_native_type_and_title(runtime, make_integration, catalog):
    first, second = await make_integration(), await make_integration()
    await put(runtime, first, CRAWLED)
    await put(runtime, second, CRAWLED, start=50)
    orders = object_id(first.id, "db/public/orders")
    schema = object_id(first.id, "db/public")

    async def titles(*operands: tuple[str, str, Any], among: list[Integration] = (first,)) -> list[str]:
        scope = ("in", "integration_id", [str(i.id) for i in among])
        return [r.title for r in await everything(catalog, OWNER, where(scope, *operands))]

    assert await titles(("exact", "parent_id", str(orders))) == ["id"]  # columns, not the dbt test
    assert await titles(("exact", "parent_id", str(schema))) == ["orders", "open", "totals", "remote"]
    assert await titles(("in", "parent_id", [str(orders), str(object_id(second.id, "db"))]), among=[first, second]) == [
        "id", "public"]  # fmt: skip
    assert await titles(("exact", "entity_type", "table")) == ["orders", "open", "totals", "remote"]
    assert await titles(("in", "entity_type", ["database", "column", "test", "chart"])) == ["shop", "id"]
    assert await titles(("in", "native_type", ["view", "foreign_table"])) == ["open", "remote"]
    assert await titles(("exact", "native_type", "table")) == ["orders"]
    assert await titles(("exact", "title", "orders"), among=[first, second]) == ["orders", "orders"]
    assert await titles(("exact", "title", "orders"), ("exact", "entity_type", "column")) == []
    assert await titles(("exact", "entity_type", "table"), ("exact", "parent_id", str(schema)),
                        ("in", "title", ["open", "remote", "id"])) == ["open", "remote"]  # fmt: skip
    # Unknown, malformed and deleted ids match nothing; they are not errors.
    for value in (str(uuid.uuid4()), "not-a-uuid"):
        assert await titles(("exact", "parent_id", value)) == []
        assert await catalog.page(OWNER, where(("exact", "integration_id", value)), 0, 50) == (0, [])
    await put(runtime, first, [("db/public/old", "table", "old", "db/public", {})], start=20, deleted=True)
    assert await titles(("exact", "parent_id", str(object_id(first.id, "db/public/old")))) == []
    assert "old" not in await titles()


async def test_a_team_key_sees_only_its_teams_resources(runtime, make_integration, catalog, team_key):
    team_a, key_a = await team_key()
    team_b, key_b = await team_key()
    mine = await make_integration(owningTeamExternalId=team_a)
    theirs = await make_integration(owningTeamExternalId=team_b)
    unowned = await make_integration()
    for i, integration in enumerate((mine, theirs, unowned)):
        await put(runtime, integration, CRAWLED, start=100 * i)
    mine_ids = [object_id(mine.id, key) for key, *_ in CRAWLED[:-1]]

    assert [r.id for r in await everything(catalog, key_a, CatalogFilter())] == mine_ids
    assert [r.integration for r in await everything(catalog, key_b, CatalogFilter())] == [theirs.id] * 7
    for hidden in (theirs, unowned):
        assert await catalog.page(key_a, where(("exact", "integration_id", str(hidden.id))), 0, 50) == (0, [])
        assert await catalog.page(key_a, where(("exact", "parent_id", str(object_id(hidden.id, "db")))), 0, 50) == (
            0, [])  # fmt: skip
        with pytest.raises(NotFound):
            await catalog.get(key_a, str(object_id(hidden.id, "db/public/orders")))
    both = where(("in", "integration_id", [str(mine.id), str(theirs.id)]))
    assert [r.id for r in await everything(catalog, key_a, both)] == mine_ids
    assert len(await everything(catalog, OWNER, where(("in", "integration_id", [str(mine.id), str(theirs.id),
                                                                              str(unowned.id)])))) == 21  # fmt: skip


async def test_lineage_shows_visible_edges_between_live_resources(runtime, make_integration, catalog, team_key):
    team_a, key_a = await team_key()
    team_b, _ = await team_key()
    mine = await make_integration(owningTeamExternalId=team_a)
    theirs = await make_integration(owningTeamExternalId=team_b)
    await put(runtime, mine, CRAWLED)
    await put(runtime, theirs, CRAWLED, start=50)
    orders, open_view = "db/public/orders", "db/public/open"
    # Mine: orders -> open, orders -> their open (external lineage), orders -> a test (not a resource), and an edge
    # to a table that is then deleted. Theirs: their orders -> my open (asserted by them: not mine to see).
    await put(runtime, mine, [("db/public/dropped", "table", "dropped", "db/public", {})], start=20, deleted=True)
    kept = await link(runtime, mine, [(mine, orders, mine, open_view), (mine, orders, theirs, open_view),
                                      (mine, orders, mine, "db/public/orders/not_null_id"),
                                      (mine, "db/public/dropped", mine, open_view)])  # fmt: skip
    await link(runtime, theirs, [(theirs, orders, mine, open_view)], start=10)

    # Team A's key sees its own edge; the one into team B's table only an org owner sees (that table is not A's).
    total, edges = await catalog.lineage(key_a, None, None, 0, 50)
    assert (total, [e.id for e in edges]) == (1, kept[:1])
    assert (edges[0].from_entity, edges[0].to_entity) == (object_id(mine.id, orders), object_id(mine.id, open_view))
    total, everything = await catalog.lineage(OWNER, None, None, 0, 50)
    assert everything[1].to_entity == object_id(theirs.id, open_view) and edges[0].created_at == at(0)
    to_open = await catalog.lineage(OWNER, None, str(object_id(mine.id, open_view)), 0, 50)
    assert [(e.from_entity, e.to_entity) for e in to_open[1]] == [
        (object_id(mine.id, orders), object_id(mine.id, open_view)),
        (object_id(theirs.id, orders), object_id(mine.id, open_view))]  # fmt: skip
    assert (await catalog.lineage(key_a, None, str(object_id(mine.id, open_view)), 0, 50))[0] == 1
    mine_orders, their_open = str(object_id(mine.id, orders)), str(object_id(theirs.id, open_view))
    assert [e.id for e in (await catalog.lineage(OWNER, mine_orders, their_open, 0, 50))[1]] == [kept[1]]
    assert await catalog.lineage(key_a, mine_orders, their_open, 0, 50) == (0, [])
    for malformed in ((mine_orders, "x"), ("x", None), (None, "")):  # no resource's id: nothing, not an error
        assert await catalog.lineage(OWNER, *malformed, 0, 50) == (0, [])
    async with runtime.pool.acquire() as conn:  # the other end goes: so does the edge (it would return with it)
        await conn.execute("UPDATE assets SET deleted_at = now() WHERE integration_id = $1 AND asset_key = $2",
                           theirs.id, open_view)  # fmt: skip
    assert await catalog.lineage(key_a, mine_orders, None, 0, 50) == (1, [edges[0]])


async def test_lineage_pages_of_fifty(runtime, make_integration, catalog):
    integration = await make_integration()
    await put(runtime, integration, [(f"t{i}", "table", f"t{i}", "", {}) for i in range(56)])
    ids = await link(runtime, integration, [(integration, "t0", integration, f"t{i}") for i in range(1, 56)])
    first, second = [await catalog.lineage(OWNER, str(object_id(integration.id, "t0")), None, o, 50) for o in (0, 50)]
    assert (first[0], second[0], [e.id for e in first[1] + second[1]]) == (55, 55, ids)


# ---- every query uses an index ------------------------------------------------------------------------------

# A store where the integration is large among many: a fifth of 50,000 assets (its orders table has 10,000
# columns), and 20,000 of its edges, a twentieth from and a twentieth to its orders table.
BACKGROUND = """
WITH assets AS (
  INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes, created_run_id,
                      updated_run_id, created_at, updated_at)
  SELECT CASE WHEN g % 5 = 0 THEN $1 ELSE ('00000000-0000-4000-8000-' || lpad(to_hex(g % 50), 12, '0'))::uuid END,
         'k' || g, CASE WHEN g % 10 = 1 THEN 'table' ELSE 'column' END, 'n' || g,
         CASE WHEN g % 5 = 0 THEN 'db/public/orders' ELSE 'k' || (g - g % 10 + 1) END, 'f', '{}', $2, $2,
         now() - g * interval '1 second', now()
  FROM generate_series(1, 50000) g)
INSERT INTO lineage_edges (integration_id, from_integration_id, from_key, to_integration_id, to_key, run_id,
                           created_at, updated_at)
SELECT $1, $1, CASE WHEN g % 20 = 0 THEN 'db/public/orders' ELSE 'k' || g END, $1,
       CASE WHEN g % 20 = 1 THEN 'db/public/orders' ELSE 'k' || g END, $2, now() - g * interval '1 second', now()
FROM generate_series(1, 20000) g
"""
SORT = re.compile(r"(^|->)\s*(Incremental )?Sort\s+\(")


class Explained:
    """The connection the store gets, recording the plan of each of its queries before running it."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.plans = conn, []

    async def _explain(self, sql: str, args: tuple) -> None:
        self.plans.append("\n".join(r[0] for r in await self.conn.fetch("EXPLAIN " + sql, *args)))

    async def fetch(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self.conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self._explain(sql, args)
        return await self.conn.fetchval(sql, *args)


async def test_every_catalog_and_lineage_query_has_an_index_path(runtime, make_integration, team_key):
    team, key = await team_key()
    integration = await make_integration(owningTeamExternalId=team)
    await put(runtime, integration, CRAWLED)
    await link(runtime, integration, [(integration, "db/public/orders", integration, "db/public/open")])
    orders, any_id = object_id(integration.id, "db/public/orders"), uuid.uuid4()
    listings = {  # name: (query, the index that gives its order: no sort)
        "one integration": (lambda c: store.resource_page(c, key, store.ResourceQuery([integration.id]), 0, 50),
                            "assets_catalog"),
        "one parent": (lambda c: store.resource_page(c, key, store.ResourceQuery(
            parents=[(integration.id, "db/public/orders")], entity_types=["column"]), 0, 50),
            "assets_catalog_by_parent"),
        "everything": (lambda c: store.resource_page(c, OWNER, store.ResourceQuery(), 0, 50), "assets_catalog_all"),
        "edges from": (lambda c: store.edge_page(c, OWNER, orders, None, 0, 50), "lineage_edges_from"),
        "edges to": (lambda c: store.edge_page(c, OWNER, None, orders, 0, 50), "lineage_edges_to"),
        "all edges": (lambda c: store.edge_page(c, OWNER, None, None, 0, 50), "lineage_edges_listing"),
    }  # fmt: skip
    lookups = {
        "a team's catalog": lambda c: store.resource_page(c, key, store.ResourceQuery(), 0, 50),
        "several parents": lambda c: store.resource_page(c, key, store.ResourceQuery(
            parents=[(integration.id, "db"), (integration.id, "db/public")]), 0, 50),
        "a team's edges": lambda c: store.edge_page(c, key, None, None, 0, 50),
        "a team's edges from": lambda c: store.edge_page(c, key, orders, None, 0, 50),
        "by id": lambda c: store.resource_by_id(c, key, orders),
        "parents": lambda c: store.visible_parents(c, key, [orders, any_id]),
        "integrations": lambda c: store.visible_integration_ids(c, key, [integration.id, any_id]),
    }  # fmt: skip
    async with runtime.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(BACKGROUND, integration.id, RUN)
            await conn.execute("ANALYZE assets; ANALYZE lineage_edges; ANALYZE integrations")
            await conn.execute("SET LOCAL enable_seqscan = off")  # only where no index applies is a scan chosen
            for name, (query, index) in listings.items():
                explained = Explained(conn)
                await query(explained)
                ordered, plans = explained.plans[-1], "\n".join(explained.plans)
                assert f" {index} " in ordered and not SORT.search(ordered), f"{name}:\n{ordered}"
                assert "Seq Scan" not in plans, f"{name}:\n{plans}"
            for name, lookup in lookups.items():
                explained = Explained(conn)
                await lookup(explained)
                plans = "\n".join(explained.plans)
                assert "Seq Scan" not in plans, f"{name}:\n{plans}"
        finally:
            await tx.rollback()  # the proposed indexes are not the schema's (yet)
