"""The synthetic source catalogs the benchmarks crawl, their expected counts, and the plain read they are held against.

A catalog is SCHEMAS schemas sharing TABLES tables evenly, each table with COLUMNS columns, a primary key, a foreign
key to the schema's previous table and comments; one view per 10 tables. A built catalog is kept (its database is
named after its shape and marked complete only once built), so later scenarios and later runs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.connector.sources.postgres import COLUMNS_SQL, CONSTRAINTS_SQL, RELATIONS_SQL
from tests.support import admin_dsn, recreate_database

VIEW_EVERY = 10  # one view per 10 tables of a schema
VIEW_COLUMNS = 2  # id, parent_id


def table_sizes() -> list[int]:
    """The catalog sizes to measure: BENCH_TABLES, e.g. "2000 20000" (the default) or "2000"."""
    return [int(size) for size in os.environ.get("BENCH_TABLES", "2000 20000").replace(",", " ").split()]


@dataclass(frozen=True)
class Catalog:
    schemas: int
    tables: int  # in all schemas together
    columns: int = 20

    @property
    def database(self) -> str:
        return f"bench_catalog_{self.schemas}s_{self.tables}t_{self.columns}c"

    def schema(self, index: int) -> str:
        return f"s{index:03d}"

    @property
    def schema_names(self) -> list[str]:
        return [self.schema(s) for s in range(self.schemas)]

    def tables_in(self, index: int) -> int:
        return self.tables // self.schemas + (1 if index < self.tables % self.schemas else 0)

    def views_in(self, index: int) -> int:
        return -(-self.tables_in(index) // VIEW_EVERY)

    def relations(self, schemas: list[int]) -> int:
        return sum(self.tables_in(s) + self.views_in(s) for s in schemas)

    def column_rows(self, schemas: list[int]) -> int:
        return sum(self.tables_in(s) * self.columns + self.views_in(s) * VIEW_COLUMNS for s in schemas)

    def counted_assets(self, schemas: list[int]) -> int:
        """What a crawl of these schemas must count: the schemas, relations and their columns. The level above the
        schemas (PostgreSQL's database, Trino's catalog) is stored but, as on every platform, not counted."""
        return len(schemas) + self.relations(schemas) + self.column_rows(schemas)

    def stored_assets(self, schemas: list[int]) -> int:
        """What a PostgreSQL crawl of these schemas stores: the counted assets and the database."""
        return 1 + self.counted_assets(schemas)

    def schema_ddl(self, index: int) -> str:
        """One schema in one statement batch: a DO block loops over its tables on the server (no round trips)."""
        name = self.schema(index)
        columns = ", ".join(f"c{j:02d} {'text' if j % 3 else 'numeric(12,2)'}" for j in range(2, self.columns))
        return f"""
        CREATE SCHEMA {name};
        COMMENT ON SCHEMA {name} IS 'synthetic catalog, schema {index}';
        DO $$
        BEGIN
          FOR i IN 0..{self.tables_in(index) - 1} LOOP
            EXECUTE format('CREATE TABLE {name}.t%s (id bigint PRIMARY KEY, parent_id bigint %s, {columns})', i,
                           CASE WHEN i > 0 THEN format('REFERENCES {name}.t%s (id)', i - 1) ELSE '' END);
            EXECUTE format('COMMENT ON TABLE {name}.t%s IS %L', i, 'table number ' || i);
            EXECUTE format('COMMENT ON COLUMN {name}.t%s.id IS %L', i, 'identifier of table ' || i);
            IF i % {VIEW_EVERY} = 0 THEN
              EXECUTE format('CREATE VIEW {name}.v%s AS SELECT id, parent_id FROM {name}.t%s', i, i);
            END IF;
          END LOOP;
        END $$;
        """

    @property
    def marker(self) -> str:
        """Names the DDL that built the database: a catalog built by other code is built again."""
        ddl = "".join(self.schema_ddl(s) for s in range(self.schemas))
        return "complete " + hashlib.sha256(ddl.encode()).hexdigest()[:16]


async def ensure_catalog(base_dsn: str, catalog: Catalog) -> str:
    """The DSN of the catalog's database, built first unless a complete one of the same shape exists."""
    dsn = base_dsn.rsplit("/", 1)[0] + "/" + catalog.database
    admin = await asyncpg.connect(admin_dsn(base_dsn))
    try:
        marker = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", catalog.database
        )
    finally:
        await admin.close()
    if marker == catalog.marker:
        print(f"source catalog {catalog.database}: reused (built by an earlier run)", flush=True)
        return dsn
    began = time.perf_counter()
    await recreate_database(base_dsn, catalog.database)
    conn = await asyncpg.connect(dsn)
    try:
        # One schema after the other: two at once was no faster on 2 cores (they contend on the catalog tables).
        for index in range(catalog.schemas):
            await conn.execute(catalog.schema_ddl(index))
        await conn.execute(f"COMMENT ON DATABASE {catalog.database} IS '{catalog.marker}'")
    finally:
        await conn.close()
    print(f"source catalog {catalog.database}: built in {time.perf_counter() - began:.1f} s", flush=True)
    return dsn


async def plain_read(dsn: str, catalog: Catalog, schemas: list[int], out: Path) -> float:
    """The baseline: the crawl's set-based catalog queries over the same schemas, written to a file as JSON lines.
    Fails unless it read exactly the relations and columns the crawl must report."""
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    rows = {RELATIONS_SQL: 0, CONSTRAINTS_SQL: 0, COLUMNS_SQL: 0}
    try:
        names = [catalog.schema(s) for s in schemas]
        oids = [r["oid"] for r in await conn.fetch("SELECT oid FROM pg_namespace WHERE nspname = ANY($1)", names)]
        with out.open("w") as file:
            for sql in rows:
                for record in await conn.fetch(sql, oids):
                    file.write(json.dumps(dict(record), default=str) + "\n")
                    rows[sql] += 1
    finally:
        await conn.close()
    elapsed = time.perf_counter() - began
    read = (rows[RELATIONS_SQL], rows[COLUMNS_SQL])
    assert read == (catalog.relations(schemas), catalog.column_rows(schemas)), (read, catalog, schemas)
    return elapsed
