"""Benchmark: a JSONL metadata import (Secoda dialect) from upload to SUCCESS vs PostgreSQL COPYing the same rows.

Builds a resources file of RESOURCES lines (1 database, 10 schemas, tables, 9 columns per table) and a lineage
file of EDGES table-to-table edges, uploads both to a custom integration over HTTP, and waits until the import's
run is SUCCESS with every resource and edge projected. The baseline COPYs the same rows (one per resource, one
per edge) into plain tables of a scratch database; the floor COPYs them into the read model's own indexed tables
there. Prints all three. Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from statistics import median

import aiohttp
import asyncpg

from services.manage.__main__ import MIGRATIONS
from shared.postgres import migrate
from tests.bench.support import KEY, at_most, run_ended, running_stack, samples, verdict
from tests.support import recreate_database

RESOURCES = int(os.environ.get("BENCH_RESOURCES", "100000"))
EDGES = int(os.environ.get("BENCH_EDGES", "50000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
COLUMNS_PER_TABLE = 9
SCHEMAS = 10


def resources() -> list[dict[str, object]]:
    lines: list[dict[str, object]] = [{"entity_type": "database", "databuilder_id": "db", "title": "warehouse"}]
    lines += [{"entity_type": "schema", "databuilder_id": f"db.s{s}", "parent_databuilder_id": "db",
               "title": f"s{s}"} for s in range(SCHEMAS)]  # fmt: skip
    table = 0
    while len(lines) < RESOURCES:
        table_id = f"db.s{table % SCHEMAS}.t{table}"
        lines.append({"entity_type": "table", "databuilder_id": table_id, "title": f"t{table}",
                      "parent_databuilder_id": f"db.s{table % SCHEMAS}", "description": f"table number {table}",
                      "native_type": "table"})  # fmt: skip
        for c in range(min(COLUMNS_PER_TABLE, RESOURCES - len(lines))):
            lines.append({"entity_type": "column", "databuilder_id": f"{table_id}.c{c}", "title": f"c{c}",
                          "parent_databuilder_id": table_id, "type": "text", "sort_order": c})  # fmt: skip
        table += 1
    return lines


def edges(tables: list[str]) -> list[dict[str, object]]:
    """EDGES distinct table-to-table edges: each table feeds the next few (round r links table i to i + r + 1)."""
    n = len(tables)
    pairs = [(tables[i % n], tables[(i % n + i // n + 1) % n]) for i in range(EDGES)]
    return [{"from_identifier": {"type": "internal_resource", "databuilder_id": a},
             "to_identifier": {"type": "internal_resource", "databuilder_id": b}} for a, b in pairs]  # fmt: skip


async def copy_baseline(dsn: str, lines: list[dict[str, object]], lineage: list[dict[str, object]]) -> float:
    """The same rows COPYed into plain tables (the time of the COPYs only)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "DROP TABLE IF EXISTS plain_resources, plain_edges; CREATE TABLE plain_resources (databuilder_id text, "
            "entity_type text, parent text, title text, attributes jsonb); "
            "CREATE TABLE plain_edges (from_id text, to_id text)"
        )
        rows = [(r["databuilder_id"], r["entity_type"], r.get("parent_databuilder_id"), r["title"],
                 json.dumps({k: v for k, v in r.items() if k not in ("databuilder_id", "entity_type", "title")}))
                for r in lines]  # fmt: skip
        edge_rows = [(e["from_identifier"]["databuilder_id"], e["to_identifier"]["databuilder_id"]) for e in lineage]  # type: ignore[index]
        began = time.perf_counter()
        await conn.copy_records_to_table("plain_resources", records=rows)
        await conn.copy_records_to_table("plain_edges", records=edge_rows)
        return time.perf_counter() - began
    finally:
        await conn.close()


async def read_model_floor(dsn: str, lines: list[dict[str, object]], lineage: list[dict[str, object]]) -> float:
    """The same rows COPYed straight into the read model's own tables (assets, lineage_edges: their indexes and
    generated ids) of a migrated scratch database: what any import path pays at least, before parsing or transport."""
    await migrate(dsn, MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        integration_id, run_id, now = uuid.uuid4(), uuid.uuid4(), datetime.now(UTC)
        await conn.execute("TRUNCATE assets, lineage_edges")
        await conn.execute("INSERT INTO integrations (id, external_id, name, source) VALUES ($1, $2, 'floor', "
                           "'custom')", integration_id, str(integration_id))  # fmt: skip
        rows = [(integration_id, r["databuilder_id"], r["entity_type"], r["title"], r.get("parent_databuilder_id"), "",
                 json.dumps({k: v for k, v in r.items() if k not in ("databuilder_id", "entity_type", "title")}),
                 run_id, run_id, now, now) for r in lines]  # fmt: skip
        edge_rows = [(integration_id, integration_id, e["from_identifier"]["databuilder_id"], integration_id,  # type: ignore[index]
                      e["to_identifier"]["databuilder_id"], run_id, now, now) for e in lineage]  # type: ignore[index]  # fmt: skip
        began = time.perf_counter()
        await conn.copy_records_to_table("assets", records=rows, columns=[
            "integration_id", "asset_key", "kind", "name", "parent_key", "fingerprint", "attributes", "created_run_id",
            "updated_run_id", "created_at", "updated_at"])  # fmt: skip
        await conn.copy_records_to_table("lineage_edges", records=edge_rows, columns=[
            "integration_id", "from_integration_id", "from_key", "to_integration_id", "to_key", "run_id", "created_at",
            "updated_at"])  # fmt: skip
        return time.perf_counter() - began
    finally:
        await conn.close()


def jsonl(items: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(item) + "\n" for item in items).encode()


async def timed_import(session: aiohttp.ClientSession, url: str, db: asyncpg.Connection, integration_id: str,
                       files: dict[str, bytes]) -> tuple[float, float, asyncpg.Record]:  # fmt: skip
    """(seconds until the upload was accepted (validated and stored), seconds until SUCCESS, the run)."""
    form = aiohttp.FormData()
    for name, content in files.items():
        form.add_field(name, content, filename=f"{name}.jsonl", content_type="application/jsonl")
    began = time.perf_counter()
    async with session.post(f"{url}/api/v1/integration/integrations/{integration_id}/import_jsonl_metadata",
                            data=form, headers={"Authorization": f"Bearer {KEY}"}) as response:  # fmt: skip
        assert response.status == 200, await response.text()
        run_id = uuid.UUID((await response.json())["run_id"])
    accepted = time.perf_counter() - began
    row = await run_ended(db, run_id)
    return accepted, time.perf_counter() - began, row


async def main() -> None:
    base = os.environ["DATABASE_URL"]
    lines = resources()
    lineage = edges([str(r["databuilder_id"]) for r in lines if r["entity_type"] == "table"])
    files = {"resources_file": jsonl(lines), "lineages_file": jsonl(lineage)}
    print(f"JSONL import: {len(lines)} resources, {len(lineage)} lineage edges "
          f"({sum(len(f) for f in files.values()) / 1e6:.1f} MB)")  # fmt: skip
    scratch = await recreate_database(base, "bench_copy")
    dsn = await recreate_database(base, "ingestion_bench")
    copies: list[float] = []
    floors: list[float] = []
    imports: list[float] = []
    accepts: list[float] = []
    async with running_stack(dsn) as stack:
        url = stack.url
        db = await asyncpg.connect(dsn)
        async with aiohttp.ClientSession() as session:
            for _ in range(ROUNDS):
                async with session.post(f"{url}/api/v1/integration/integrations", json={"type": "custom"},
                                        headers={"Authorization": f"Bearer {KEY}"}) as response:  # fmt: skip
                    assert response.status == 201, await response.text()
                    integration_id = (await response.json())["id"]
                copies.append(await copy_baseline(scratch, lines, lineage))
                floors.append(await read_model_floor(scratch, lines, lineage))
                accepted, elapsed, run = await timed_import(session, url, db, integration_id, files)
                assert run["status"] == "SUCCESS", run["message"]
                stored = await db.fetchval("SELECT count(*) FROM assets WHERE integration_id = $1 AND deleted_at "
                                           "IS NULL", uuid.UUID(integration_id))  # fmt: skip
                linked = await db.fetchval("SELECT count(*) FROM lineage_edges WHERE integration_id = $1",
                                           uuid.UUID(integration_id))  # fmt: skip
                assert (stored, linked) == (len(lines), len(lineage)), (stored, linked, run["message"])
                imports.append(elapsed)
                accepts.append(accepted)
        await db.close()
        plain = median(copies)
        print(f"rounds: {ROUNDS} (median, then every sample)")
        print(f"COPY of the same rows into plain tables: {plain:7.3f} s   {samples(copies)}")
        print(f"COPY of the same rows into the read model's tables: {median(floors):7.3f} s   "
              f"({median(floors) / plain:.2f}x; the floor of any import path)   {samples(floors)}")  # fmt: skip
        print(f"upload -> SUCCESS, all projected:        {median(imports):7.3f} s   "
              f"({median(imports) / plain:.2f}x the COPY)   {samples(imports)}")  # fmt: skip
        print(f"  of which upload -> 200 (validated, stored): {median(accepts):7.3f} s   {samples(accepts)}")
        figure = at_most("JSONL import", "upload -> SUCCESS / COPY", median(imports) / plain, 3, "x",
                         f"{median(imports):.2f} s; floor {median(floors) / plain:.1f}x")  # fmt: skip
        print(f"target: upload -> SUCCESS {figure.target} the COPY: {verdict(figure.met)}")


if __name__ == "__main__":
    asyncio.run(main())
