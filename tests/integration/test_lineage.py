"""Lineage edges: projected from run.lineage_reported.v1 when a full sync succeeds (replacing the integration's
edges), left alone by a failed or partial sync, rebuilt from the log; external ends resolved by name."""

from __future__ import annotations

import secrets
import uuid

import pytest

from services.connector.lineage import resolve
from services.core.imports import ExternalColumn, ExternalTable, Internal, LineageEdge, QueriedTables
from services.core.ingestion import SyncRequest, claim_run
from services.core.integrations import NewIntegration
from services.core.store import rebuild, runlog
from shared.events import (
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    LineageEdgePayload,
    LineageReported,
    LineageReportedPayload,
    RunFailed,
    RunSucceeded,
)
from tests.integration.conftest import OWNER
from tests.integration.test_run_log import report, started, succeeded

pytestmark = pytest.mark.integration


def asset(key: str, kind: str, name: str, parent: str) -> dict[str, object]:
    return {"key": key, "kind": kind, "name": name, "parent_key": parent, "fingerprint": key, "attributes": {}}


async def custom_integration(integrations) -> object:
    spec = NewIntegration.model_validate({"externalId": f"c-{uuid.uuid4().hex[:10]}", "name": "Uploads",
                                          "source": "custom", "configuration": {}})  # fmt: skip
    return await integrations.create(OWNER, spec)


async def sync(runtime, integration, assets, edges, *, outcome=RunSucceeded, scope=None):
    """One upload sync of `integration` reporting `assets` and lineage `edges` ((from, to) pairs of (integration,
    key)), ending with `outcome`."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        request = SyncRequest("manual", upload_id=uuid.uuid4(), scope=scope)
        run = await claim_run(conn, integration, request, at=runtime.clock(), run_id=uuid.uuid4(),
                              task_id=uuid.uuid4())  # fmt: skip
        lineage = [LineageEdgePayload(from_integration_id=a[0], from_key=a[1], to_integration_id=b[0], to_key=b[1])
                   for a, b in edges]  # fmt: skip
        events = [started(run), report(run, AssetsChanged, AssetsChangedPayload(upserted=assets)),
                  report(run, LineageReported, LineageReportedPayload(edges=lineage)),
                  report(run, outcome, succeeded(len(assets)) if outcome is RunSucceeded else
                         FinishedPayload(counts=succeeded(0).counts, message="boom"))]  # fmt: skip
        await runlog.append(conn, run.run_id, events)
    return run


async def edges_of(conn, integration_id):
    rows = await conn.fetch(
        "SELECT from_integration_id, from_key, to_integration_id, to_key, created_at, run_id, id, from_object_id "
        "FROM lineage_edges WHERE integration_id = $1 ORDER BY from_key, to_key", integration_id)  # fmt: skip
    return [dict(r) for r in rows]


async def test_a_full_sync_replaces_the_lineage_an_integration_asserts(runtime, integrations):
    mine, other = await custom_integration(integrations), await custom_integration(integrations)
    await sync(runtime, other, [asset("x", "table", "x", "")], [])
    a, b, x = (mine.id, "a"), (mine.id, "b"), (other.id, "x")
    first = await sync(runtime, mine, [asset("a", "table", "a", ""), asset("b", "table", "b", "")],
                       [(a, b), (a, x), (a, b)])  # fmt: skip
    async with runtime.pool.acquire() as conn:
        before = await edges_of(conn, mine.id)
    assert [(e["from_key"], e["to_integration_id"], e["to_key"]) for e in before] == [
        ("a", mine.id, "b"),
        ("a", other.id, "x"),
    ]
    assert {e["run_id"] for e in before} == {first.run_id}

    await sync(runtime, mine, [asset("a", "table", "a", "")], [(a, x)], outcome=RunFailed)  # changes nothing
    await sync(runtime, mine, [asset("a", "table", "a", "")], [(a, x)], scope="a")  # a partial sync neither
    async with runtime.pool.acquire() as conn:
        assert await edges_of(conn, mine.id) == before

    second = await sync(runtime, mine, [asset("a", "table", "a", "")], [(a, x)])
    async with runtime.pool.acquire() as conn:
        after = await edges_of(conn, mine.id)
        # The kept edge is the same row: same id and creation time, asserted again by the new run.
        assert [(e["to_key"], e["id"], e["created_at"], e["run_id"]) for e in after] == [
            ("x", before[1]["id"], before[1]["created_at"], second.run_id)]  # fmt: skip
        assert await edges_of(conn, other.id) == []
        rebuilt_from = after
        await rebuild.rebuild(conn)
        assert await edges_of(conn, mine.id) == rebuilt_from


async def test_external_ends_resolve_by_name_through_the_parent_chain(runtime, integrations):
    warehouse, mine = await custom_integration(integrations), await custom_integration(integrations)
    t = f"orders_{uuid.uuid4().hex[:8]}"  # a name of its own: other tests' tables named orders would match too
    await sync(runtime, warehouse, [
        asset("d", "database", "Shop", ""), asset("d/s", "schema", "Public", "d"),
        asset("d/s/t", "table", t.title(), "d/s"), asset("d/s/t/c", "column", "Id", "d/s/t"),
        asset("d/s2", "schema", "staging", "d"), asset("d/s2/t", "view", t, "d/s2"),
    ], [])  # fmt: skip
    orders = ExternalTable("shop", "public", t.upper())
    edges = [
        LineageEdge(orders, Internal("mine")),
        LineageEdge(ExternalColumn(orders, "id"), Internal("mine")),
        LineageEdge(ExternalTable(None, None, t), Internal("both")),  # matches both schemas' tables
        LineageEdge(QueriedTables((ExternalTable(None, "staging", t), ExternalTable(None, None, "gone"))),
                    Internal("mine")),
        LineageEdge(ExternalTable("shop", "nowhere", t), Internal("mine")),
    ]  # fmt: skip
    async with runtime.pool.acquire() as conn:
        resolved = await resolve(conn, mine.id, None, edges)
    w = str(warehouse.id)
    pairs = [(e["from_integration_id"] == w, e["from_key"], e["to_key"]) for e in resolved.edges]
    assert pairs == [(True, "d/s/t", "mine"), (True, "d/s/t/c", "mine"), (True, "d/s/t", "both"),
                     (True, "d/s2/t", "both"), (True, "d/s2/t", "mine")]  # fmt: skip
    assert resolved.unmatched == 1  # the last edge's table; 'gone' is one of two tables of a matched query
    async with runtime.pool.acquire() as conn:  # its own tables are never external
        assert (await resolve(conn, warehouse.id, None, [LineageEdge(orders, Internal("t"))])).edges == []


async def test_a_teams_lineage_matches_only_the_tables_its_team_can_see(runtime, integrations):
    ours, theirs, mine = [await custom_integration(integrations) for _ in range(3)]
    salaries = f"salaries_{uuid.uuid4().hex[:8]}"
    teams = [uuid.uuid4(), uuid.uuid4()]
    async with runtime.pool.acquire() as conn:
        for team in teams:
            await conn.execute("INSERT INTO teams (id, external_id, name) VALUES ($1, $2, 'team')", team, str(team))
        await conn.execute("UPDATE integrations SET owning_team_id = $1 WHERE id = ANY($2::uuid[])", teams[0],
                           [ours.id, mine.id])  # fmt: skip
        await conn.execute("UPDATE integrations SET owning_team_id = $1 WHERE id = $2", teams[1], theirs.id)
    for integration in (ours, theirs):
        await sync(runtime, integration, [asset("t", "table", salaries, "")], [])
    edge = [LineageEdge(ExternalTable(None, None, salaries), Internal("report"))]
    async with runtime.pool.acquire() as conn:
        scoped = await resolve(conn, mine.id, teams[0], edge)
        unscoped = await resolve(conn, mine.id, None, edge)  # an org owner's integration sees every team's
    assert [e["from_integration_id"] for e in scoped.edges] == [str(ours.id)]
    assert sorted(e["from_integration_id"] for e in unscoped.edges) == sorted([str(ours.id), str(theirs.id)])


async def test_an_edge_between_two_assets_with_the_longest_keys_is_stored(runtime, integrations):
    """Keys may be 2,000 bytes (MAX_KEY_BYTES). An index over both ends of an edge would need a 4,000-byte row,
    beyond a btree's 2,704: the edge table is keyed by the edge's id instead."""
    integration = await custom_integration(integrations)
    a, b = (secrets.token_urlsafe(1500)[:2000] for _ in range(2))  # incompressible
    run = await sync(runtime, integration, [asset(a, "table", "a", ""), asset(b, "table", "b", "")],
                     [((integration.id, a), (integration.id, b))])  # fmt: skip
    async with runtime.pool.acquire() as conn:
        state = await conn.fetchval("SELECT status FROM runs WHERE id = $1", run.run_id)
        edges = await edges_of(conn, integration.id)
    assert state == "SUCCESS" and [(e["from_key"], e["to_key"]) for e in edges] == [(a, b)]
