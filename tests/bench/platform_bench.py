"""Benchmark: trigger -> SUCCESS of a MariaDB and a Trino catalog vs a plain set-based read of the same metadata
with the same driver (aiomysql, the trino client), per size of BENCH_TABLES that is at most PLATFORM_MAX_TABLES.

The catalog has the shape of catalog_bench's (Catalog: SCHEMAS schemas, COLUMNS columns, a view per 10 tables,
comments; MariaDB also primary and foreign keys, which Trino's memory connector does not have), built in the engines
`infra/engines.sh` starts (`make bench` starts MariaDB and Trino on ports of their own). Each round: the plain read
(the plug-in's own queries, written to a file as JSON lines), a first crawl of a new integration and its unchanged
re-run, through fresh services. Every run must be SUCCESS with exactly the catalog's assets.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomysql
import trino.dbapi

from services.connector.sources import mysql as mysql_source
from services.connector.sources import trino as trino_source
from services.core.sources.mysql import MySQLConfig
from tests.bench.catalog_bench import COLUMNS, SCHEMAS, Crawls, measure_crawls, report_crawls
from tests.bench.source_catalog import VIEW_EVERY, Catalog, table_sizes
from tests.bench.support import Api

PLATFORM_MAX_TABLES = int(os.environ.get("BENCH_PLATFORM_MAX_TABLES", "2000"))  # the size: 2,000 tables
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 3)
MARIADB_PASSWORD = os.environ.get("MARIADB_PASSWORD", "ingest")
TRINO_CATALOG = "memory"
TRINO_BUILDERS = 8  # DDL statements Trino runs at once while the catalog is built


def mariadb_port() -> int:
    return int(os.environ.get("MARIADB_PORT", "13306"))


def trino_port() -> int:
    return int(os.environ.get("TRINO_PORT", "18080"))


def _column_types(catalog: Catalog, text: str, number: str) -> str:
    return ", ".join(f"c{j:02d} {text if j % 3 else number}" for j in range(2, catalog.columns))


@dataclass(frozen=True)
class Platform:
    """One engine: how its catalog is built, read plainly, and registered as an integration."""

    name: str
    build: Callable[[Catalog], Awaitable[None]]
    plain_read: Callable[[Catalog, Path], Awaitable[float]]
    source: str
    configuration: Callable[[Catalog], dict[str, Any]]
    credentials: dict[str, Any]
    container: bool  # a level above the schemas that is stored but not counted (Trino's catalog)
    selects_nothing: dict[str, Any]  # configuration for the warm-up: it connects and reads, but finds no schema


# --- MariaDB: schemas are databases; built once and kept (the engine's data dir outlives the bench) ---------------


def mariadb_schema(catalog: Catalog, index: int) -> str:
    return f"bench_{catalog.schema(index)}"


def mariadb_marker(catalog: Catalog) -> str:
    """A database whose name says the catalog of this shape is complete: created last, after every table."""
    return f"bench_complete_{catalog.schemas}s_{catalog.tables}t_{catalog.columns}c"


def mariadb_ddl(catalog: Catalog, index: int) -> list[str]:
    name, columns = mariadb_schema(catalog, index), _column_types(catalog, "text", "decimal(12,2)")
    statements = [f"CREATE DATABASE {name} COMMENT 'synthetic catalog, schema {index}'"]
    for i in range(catalog.tables_in(index)):
        parent = f", FOREIGN KEY (parent_id) REFERENCES {name}.t{i - 1} (id)" if i > 0 else ""
        statements.append(
            f"CREATE TABLE {name}.t{i} (id bigint PRIMARY KEY COMMENT 'identifier of table {i}', parent_id bigint, "
            f"{columns}{parent}) COMMENT 'table number {i}'"
        )
        if i % VIEW_EVERY == 0:
            statements.append(f"CREATE VIEW {name}.v{i} AS SELECT id, parent_id FROM {name}.t{i}")
    return statements


async def mariadb_connect(**options: Any) -> Any:
    return await aiomysql.connect(host="127.0.0.1", port=mariadb_port(), user="root", password=MARIADB_PASSWORD,
                                  autocommit=True, **options)  # fmt: skip


async def mariadb_build(catalog: Catalog) -> None:
    conn = await mariadb_connect()
    try:
        cursor = await conn.cursor()
        marker = mariadb_marker(catalog)
        await cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", marker)
        if await cursor.fetchone():
            print(f"mariadb catalog of {catalog.tables} tables: reused (built by an earlier run)", flush=True)
            return
        began = time.perf_counter()
        await cursor.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'bench\\_%'")
        for (stale,) in await cursor.fetchall():
            await cursor.execute(f"DROP DATABASE `{stale}`")
        for index in range(catalog.schemas):
            for statement in mariadb_ddl(catalog, index):
                await cursor.execute(statement)
        await cursor.execute(f"CREATE DATABASE {marker}")
        print(f"mariadb catalog of {catalog.tables} tables: built in {time.perf_counter() - began:.1f} s", flush=True)
    finally:
        conn.close()


def mariadb_configuration(catalog: Catalog) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": mariadb_port(), "username": "root",
            "includeSchemas": [mariadb_schema(catalog, s) for s in range(catalog.schemas)]}  # fmt: skip


async def mariadb_plain_read(catalog: Catalog, out: Path) -> float:
    """The plug-in's set-based queries (MariaDB 10.5+: schema comments and CHECK constraints) with aiomysql, over TLS
    as the crawl connects (sslMode preferred), every row written to a file."""
    began = time.perf_counter()
    names = [mariadb_schema(catalog, s) for s in range(catalog.schemas)]
    in_names = ", ".join(["%s"] * len(names))
    config = MySQLConfig.model_validate(mariadb_configuration(catalog))
    conn = await mariadb_connect(charset="utf8mb4", ssl=mysql_source.tls_for(config))
    queries = [
        (mysql_source.SCHEMAS_SQL.format(comment="SCHEMA_COMMENT"), ()),
        (mysql_source.TABLES_SQL.format(schemas=in_names), names),
        (mysql_source.VIEWS_SQL.format(schemas=in_names), names),
        (mysql_source.KEYS_SQL.format(schemas=in_names), names + names),
        (mysql_source.JSON_COLUMNS_SQL.format(schemas=in_names), names),
        (mysql_source.COLUMNS_SQL.format(schemas=in_names), names),
    ]
    counts: list[int] = []
    try:
        with out.open("w") as file:
            for sql, args in queries:
                cursor = await conn.cursor(aiomysql.SSCursor)
                await cursor.execute(sql, args)
                count = 0
                while rows := await cursor.fetchmany(1000):
                    for row in rows:
                        file.write(json.dumps(row, default=str) + "\n")
                    count += len(rows)
                counts.append(count)
                await cursor.close()
    finally:
        conn.close()
    elapsed = time.perf_counter() - began
    every = list(range(catalog.schemas))
    read = (counts[1], counts[-1])
    assert read == (catalog.relations(every), catalog.column_rows(every)), (read, catalog)
    return elapsed


MARIADB = Platform("mariadb", mariadb_build, mariadb_plain_read, "mariadb", mariadb_configuration,
                   {"password": MARIADB_PASSWORD}, container=False,
                   selects_nothing={"includeSchemas": ["no_such_schema"]})  # fmt: skip


# --- Trino: the memory connector (no keys); its catalog lives as long as the server, so it is built per bench -----


def trino_execute(statement: str) -> list[list[Any]]:
    connection = trino.dbapi.connect(host="127.0.0.1", port=trino_port(), user="ingest")
    try:
        cursor = connection.cursor()
        cursor.execute(statement)
        return list(cursor.fetchall())
    finally:
        connection.close()


def trino_ddl(catalog: Catalog, index: int) -> tuple[list[str], list[str]]:
    """(tables, views) of one schema: the views are created once their tables exist."""
    name, columns = f"{TRINO_CATALOG}.{catalog.schema(index)}", _column_types(catalog, "varchar", "decimal(12,2)")
    tables = [f"CREATE TABLE {name}.t{i} (id bigint NOT NULL COMMENT 'identifier of table {i}', parent_id bigint, "
              f"{columns}) COMMENT 'table number {i}'" for i in range(catalog.tables_in(index))]  # fmt: skip
    views = [f"CREATE VIEW {name}.v{i} AS SELECT id, parent_id FROM {name}.t{i}"
             for i in range(0, catalog.tables_in(index), VIEW_EVERY)]  # fmt: skip
    return tables, views


def _trino_build(catalog: Catalog) -> None:
    began = time.perf_counter()
    existing = trino_execute(f"SELECT schema_name FROM {TRINO_CATALOG}.information_schema.schemata "
                             "WHERE schema_name <> 'information_schema'")  # fmt: skip
    for (stale,) in existing:
        trino_execute(f'DROP SCHEMA {TRINO_CATALOG}."{stale}" CASCADE')
    ddl = [trino_ddl(catalog, index) for index in range(catalog.schemas)]
    for index in range(catalog.schemas):
        trino_execute(f"CREATE SCHEMA {TRINO_CATALOG}.{catalog.schema(index)}")
    with ThreadPoolExecutor(TRINO_BUILDERS) as pool:
        list(pool.map(trino_execute, [statement for tables, _ in ddl for statement in tables]))
        list(pool.map(trino_execute, [statement for _, views in ddl for statement in views]))
    print(f"trino catalog of {catalog.tables} tables: built in {time.perf_counter() - began:.1f} s", flush=True)


async def trino_build(catalog: Catalog) -> None:
    await asyncio.to_thread(_trino_build, catalog)


def trino_configuration(catalog: Catalog) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": trino_port(), "https": False, "username": "ingest", "catalog": TRINO_CATALOG}


def _trino_plain_read(catalog: Catalog, out: Path) -> float:
    """The plug-in's queries for one catalog with the trino client, one connection, every row written to a file."""
    began = time.perf_counter()
    quoted = trino_source.quote_identifier(TRINO_CATALOG)
    literal = trino_source.quote_literal(TRINO_CATALOG)
    queries = [
        trino_source.CATALOGS_SQL,
        trino_source.SCHEMAS_SQL.format(catalog=quoted),
        trino_source.VIEWS_SQL.format(catalog=quoted),
        trino_source.MATERIALIZED_VIEWS_SQL.format(name=literal),
        trino_source.COMMENTS_SQL.format(name=literal),
        trino_source.TABLES_SQL.format(catalog=quoted),
        trino_source.COLUMNS_SQL.format(name=literal),
    ]
    connection = trino.dbapi.connect(host="127.0.0.1", port=trino_port(), user="ingest")
    counts: list[int] = []
    try:
        cursor = connection.cursor()
        with out.open("w") as file:
            for sql in queries:
                cursor.execute(sql)
                count = 0
                while rows := cursor.fetchmany(1000):
                    for row in rows:
                        file.write(json.dumps(row, default=str) + "\n")
                    count += len(rows)
                counts.append(count)
    finally:
        connection.close()
    elapsed = time.perf_counter() - began
    every = list(range(catalog.schemas))
    read = (counts[-2], counts[-1])
    assert read == (catalog.relations(every), catalog.column_rows(every)), (read, catalog)
    return elapsed


async def trino_plain_read(catalog: Catalog, out: Path) -> float:
    return await asyncio.to_thread(_trino_plain_read, catalog, out)


TRINO = Platform(
    "trino",
    trino_build,
    trino_plain_read,
    "trino",
    trino_configuration,
    {},
    container=True,
    selects_nothing={"catalog": "scratch"},
)  # infra/engines/trino.sh's second, empty memory catalog


# --- the measurement, the same for both ---------------------------------------------------------------------------


async def measure(base: str, platform: Platform, catalog: Catalog) -> Crawls:
    await platform.build(catalog)
    every = list(range(catalog.schemas))
    counted = catalog.counted_assets(every)
    print(f"{platform.name}: {catalog.tables} tables in {catalog.schemas} schemas x {catalog.columns} columns, "
          f"{catalog.relations(every) - catalog.tables} views: {counted} assets per run", flush=True)  # fmt: skip

    async def create(api: Api, external_id: str, selecting_nothing: bool) -> None:
        configuration = platform.configuration(catalog) | (platform.selects_nothing if selecting_nothing else {})
        await api.create_integration(external_id, platform.source, configuration, platform.credentials)

    async def read() -> float:
        return await platform.plain_read(catalog, Path(tempfile.mkdtemp()) / "catalog.jsonl")

    stored = counted + (1 if platform.container else 0)
    crawls, _ = await measure_crawls(base, ROUNDS, create, read, (counted, stored))
    return crawls


async def main() -> None:
    base = os.environ["DATABASE_URL"]
    sizes = [size for size in table_sizes() if size <= PLATFORM_MAX_TABLES]
    if not sizes:
        print(f"no size of BENCH_TABLES is at most {PLATFORM_MAX_TABLES} tables (BENCH_PLATFORM_MAX_TABLES)")
    for tables in sizes:
        for platform in (MARIADB, TRINO):
            print(f"--- {platform.name}: catalog of {tables} tables (fresh services) ---", flush=True)
            crawls = await measure(base, platform, Catalog(SCHEMAS, tables, COLUMNS))
            report_crawls(f"{platform.name} {tables} tables", tables, crawls)


if __name__ == "__main__":
    asyncio.run(main())
