"""Benchmark: trigger -> SUCCESS of a large catalog vs a plain set-based read of the same metadata.

Builds a source database of TABLES tables x COLUMNS columns (with views, comments and foreign keys),
starts the services as processes, triggers a run over HTTP and waits until the run is SUCCESS with
every asset projected in Postgres. Prints both timings side by side. Run with `make bench`.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import aiohttp
import asyncpg

from services.connector.sources.postgres import COLUMNS_SQL, CONSTRAINTS_SQL, RELATIONS_SQL
from tests.bench.support import run_ended, running_stack, samples
from tests.support import recreate_database

TABLES = int(os.environ.get("BENCH_TABLES", "2000"))
COLUMNS = int(os.environ.get("BENCH_COLUMNS", "20"))
VIEW_EVERY = 10  # one view per 10 tables
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# the database + 1 schema + tables + views + 20 columns per table + 2 columns per view.
EXPECTED_ASSETS = 2 + TABLES + TABLES // VIEW_EVERY + TABLES * COLUMNS + (TABLES // VIEW_EVERY) * 2
KEY = "bench-key-" + uuid.uuid4().hex


def catalog_ddl() -> str:
    columns = ", ".join(f"c{j:02d} {'text' if j % 3 else 'numeric(12,2)'}" for j in range(2, COLUMNS))
    return f"""
    CREATE SCHEMA bench;
    COMMENT ON SCHEMA bench IS 'synthetic catalog';
    DO $$
    BEGIN
      FOR i IN 0..{TABLES - 1} LOOP
        EXECUTE format('CREATE TABLE bench.t%s (id bigint PRIMARY KEY, parent_id bigint %s, {columns})',
                       i, CASE WHEN i > 0 THEN format('REFERENCES bench.t%s (id)', i - 1) ELSE '' END);
        EXECUTE format('COMMENT ON TABLE bench.t%s IS %L', i, 'table number ' || i);
        EXECUTE format('COMMENT ON COLUMN bench.t%s.id IS %L', i, 'identifier of table ' || i);
        IF i % {VIEW_EVERY} = 0 THEN
          EXECUTE format('CREATE VIEW bench.v%s AS SELECT id, parent_id FROM bench.t%s', i, i);
        END IF;
      END LOOP;
    END $$;
    """


async def plain_read(dsn: str, out: Path) -> tuple[float, int]:
    """The baseline: the same set-based catalog queries, written to a file as JSON lines."""
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    rows = 0
    try:
        oids = [r["oid"] for r in await conn.fetch("SELECT oid FROM pg_namespace WHERE nspname = 'bench'")]
        with out.open("w") as file:
            for sql in (RELATIONS_SQL, CONSTRAINTS_SQL, COLUMNS_SQL):
                for record in await conn.fetch(sql, oids):
                    file.write(json.dumps(dict(record), default=str) + "\n")
                    rows += 1
    finally:
        await conn.close()
    return time.perf_counter() - began, rows


async def timed_run(
    session: aiohttp.ClientSession, url: str, db: asyncpg.Connection, external_id: str
) -> tuple[float, asyncpg.Record]:
    began = time.perf_counter()
    async with session.post(f"{url}/api/integrations/{external_id}/run", headers={"x-api-key": KEY}) as response:
        assert response.status == 202, await response.text()
        run_id = uuid.UUID((await response.json())["ingestionRunId"])
    row = await run_ended(db, run_id)
    return time.perf_counter() - began, row


async def main() -> None:
    base = os.environ["DATABASE_URL"]
    print(f"building source catalog: {TABLES} tables x {COLUMNS} columns, {TABLES // VIEW_EVERY} views ...")
    source = await recreate_database(base, "bench_source")
    conn = await asyncpg.connect(source)
    await conn.execute(catalog_ddl())
    await conn.close()
    dsn = await recreate_database(base, "ingestion_bench")
    port = 18080
    env = os.environ | {"DATABASE_URL": dsn, "API_PORT": str(port), "BOOTSTRAP_API_KEY": KEY, "APP_ENV": "test",
                        "LOG_LEVEL": "WARNING"}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with running_stack(env, url):
        from urllib.parse import urlparse

        parsed = urlparse(source)
        body = {"name": "Bench", "source": "postgres",
                "configuration": {"host": parsed.hostname, "port": parsed.port, "database": "bench_source",
                                  "username": parsed.username, "includeSchemas": ["bench"], "sslmode": "disable"},
                "credentials": {"password": parsed.password}}  # fmt: skip
        db = await asyncpg.connect(dsn)
        plain: list[float] = []
        firsts: list[float] = []
        reruns: list[float] = []
        async with aiohttp.ClientSession() as session:
            # Warm-up: the first run after start also pays for consumer-group joins and connections.
            warm = body | {"externalId": "warm-up"}
            warm["configuration"] = body["configuration"] | {"includeSchemas": ["no_such_schema"]}
            async with session.post(url + "/api/integrations", json=warm, headers={"x-api-key": KEY}) as response:
                assert response.status == 201, await response.text()
            cold, _ = await timed_run(session, url, db, "warm-up")
            print(f"cold start (first run after the services started, empty catalog): {cold:.3f} s")
            for round_ in range(ROUNDS):
                external_id = f"bench-{round_}"
                async with session.post(url + "/api/integrations", json=body | {"externalId": external_id},
                                        headers={"x-api-key": KEY}) as response:  # fmt: skip
                    assert response.status == 201, await response.text()
                elapsed, rows = await plain_read(source, Path(tempfile.mkdtemp()) / "catalog.jsonl")
                plain.append(elapsed)
                elapsed, run = await timed_run(session, url, db, external_id)
                assert run["status"] == "SUCCESS", run["message"]
                assert run["assets_processed"] == run["assets_created"] == EXPECTED_ASSETS, dict(run)
                stored = await db.fetchval(
                    "SELECT count(*) FROM assets a JOIN integrations i ON i.id = a.integration_id "
                    "WHERE i.external_id = $1 AND a.deleted_at IS NULL", external_id,
                )  # fmt: skip
                assert stored == EXPECTED_ASSETS, stored
                firsts.append(elapsed)
                elapsed, rerun = await timed_run(session, url, db, external_id)
                assert (rerun["status"], rerun["assets_created"], rerun["assets_updated"]) == ("SUCCESS", 0, 0)
                reruns.append(elapsed)
        await db.close()
        base = median(plain)
        print(f"assets per run, all projected in Postgres: {EXPECTED_ASSETS} ({rows} catalog rows read)")
        print(f"rounds: {ROUNDS} (median, then every sample)")
        print(f"plain set-based read to a file:        {base:7.3f} s   {samples(plain)}")
        print(f"trigger -> SUCCESS, first run:         {median(firsts):7.3f} s   "
              f"({median(firsts) / base:.2f}x the plain read)   {samples(firsts)}")  # fmt: skip
        print(f"trigger -> SUCCESS, unchanged re-run:  {median(reruns):7.3f} s   "
              f"({median(reruns) / base:.2f}x the plain read)   {samples(reruns)}")  # fmt: skip
        print("target: trigger -> SUCCESS within 3x the plain read")


if __name__ == "__main__":
    asyncio.run(main())
