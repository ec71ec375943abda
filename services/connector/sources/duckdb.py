"""DuckDB source: one database file: its catalog, schemas, tables, views, columns, comments, primary, unique and
foreign keys, read from DuckDB's metadata functions (duckdb_schemas(), duckdb_tables(), ...), one query each.

DuckDB's client is synchronous: every call runs in a worker thread (asyncio.to_thread) on the plug-in's one
read-only connection, one call at a time. Cancelling interrupts the running query at the source
(connection.interrupt()) before the connection is closed behind it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import duckdb

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    column_asset,
    container_asset,
    foreign_key,
    key_part,
    schema_asset,
    table_asset,
)
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.files import DatabaseFileConfig, existing_database_file
from services.core.sources.uploads import NothingToConfigure

T = TypeVar("T")
CLOSE_TIMEOUT_S = 5.0

# The file's own catalog(s): not DuckDB's `system` and `temp`, nor the system schemas every catalog carries.
CATALOGS = "SELECT database_name FROM duckdb_databases() WHERE NOT internal AND database_name NOT IN ('system', 'temp')"
USER_OBJECTS = f"database_name IN ({CATALOGS}) AND schema_name NOT IN ('information_schema', 'pg_catalog')"

SCHEMAS_SQL = f"""
SELECT database_name, schema_name, comment FROM duckdb_schemas() WHERE {USER_OBJECTS}
ORDER BY database_name, schema_name
"""
RELATIONS_SQL = f"""
SELECT database_name, schema_name, table_name AS name, 'table' AS kind, comment, NULL AS definition
FROM duckdb_tables() WHERE NOT internal AND NOT temporary AND {USER_OBJECTS}
UNION ALL
SELECT database_name, schema_name, view_name, 'view', comment, sql
FROM duckdb_views() WHERE NOT internal AND NOT temporary AND {USER_OBJECTS}
ORDER BY database_name, schema_name, name
"""
CONSTRAINTS_SQL = f"""
SELECT database_name, schema_name, table_name, constraint_type, constraint_name, constraint_column_names,
       referenced_table, referenced_column_names
FROM duckdb_constraints()
WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY') AND {USER_OBJECTS}
ORDER BY database_name, schema_name, table_name, constraint_index
"""
COLUMNS_SQL = f"""
SELECT database_name, schema_name, table_name, column_name, column_index, data_type, is_nullable, comment,
       column_default, is_generated
FROM duckdb_columns() WHERE NOT internal AND {USER_OBJECTS}
ORDER BY database_name, schema_name, table_name, column_index
"""

Row = dict[str, Any]
Relation = tuple[str, str, str]  # catalog, schema, name


class DuckdbSource:
    def __init__(self, config: DatabaseFileConfig, batch_size: int = 1000) -> None:
        self.config = config
        self.report = SourceReport()
        self._batch_size = batch_size
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()  # one call on the connection at a time, and close() only after it
        self._closing = threading.Lock()  # held while the connection closes: no interrupt() then
        self._closed = False

    @classmethod
    def create(
        cls, config: DatabaseFileConfig, credentials: NothingToConfigure, addresses: CheckedAddresses
    ) -> DuckdbSource:
        return cls(config)

    async def _call(self, work: Callable[[duckdb.DuckDBPyConnection], T], what: str) -> T:
        conn = await self._connect()

        def locked() -> T:
            with self._lock:
                return work(conn)

        try:
            return await asyncio.to_thread(locked)
        except duckdb.Error as error:
            raise SourceError(f"Cannot {what}: {type(error).__name__}: {error}") from None

    async def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            try:
                path = existing_database_file(self.config.path, "DuckDB")
            except ValueError as refused:
                raise SourceError(str(refused)) from None
            try:
                self._conn = await asyncio.to_thread(_open, path)
            except duckdb.Error as error:
                raise SourceError(f"Cannot open DuckDB database {path}: {type(error).__name__}: {error}") from None
        return self._conn

    async def _rows(self, sql: str, what: str) -> list[Row]:
        return await self._call(lambda conn: _as_dicts(conn.execute(sql), None), what)

    async def test_connection(self) -> None:
        """Open the file read-only and list its schemas, as a crawl would."""
        await self._rows(SCHEMAS_SQL, "list schemas")

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    async def close(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        closed = asyncio.ensure_future(asyncio.to_thread(self._close_when_idle, conn))
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                while not closed.done():
                    # Again until it lands: an interrupt before the thread starts the query is lost.
                    self._interrupt(conn)
                    await asyncio.wait({closed}, timeout=0.05)
        except TimeoutError:
            closed.cancel()  # the thread still closes the connection once the call returns; the run must not wait
        else:
            closed.result()

    def _interrupt(self, conn: duckdb.DuckDBPyConnection) -> None:
        if self._closing.acquire(blocking=False):  # never while the connection is being closed
            try:
                if not self._closed:
                    conn.interrupt()  # the query running in the worker thread fails with an InterruptException
            finally:
                self._closing.release()

    def _close_when_idle(self, conn: duckdb.DuckDBPyConnection) -> None:
        with self._lock, self._closing:
            self._closed = True
            conn.close()

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        schemas = await self._rows(SCHEMAS_SQL, "list schemas")
        catalogs = sorted({s["database_name"] for s in schemas})
        schema_keys: dict[tuple[str, str], str] = {}
        batch = [container_asset(name, "database") for name in catalogs]
        for s in schemas:
            asset = schema_asset(key_part(s["database_name"]), s["schema_name"], s["comment"])
            schema_keys[(s["database_name"], s["schema_name"])] = asset["key"]
            batch.append(asset)
        yield batch
        relations = await self._rows(RELATIONS_SQL, "list tables and views")
        constraints = _Constraints(await self._rows(CONSTRAINTS_SQL, "read constraints"))
        keys: dict[Relation, str] = {}
        tables = []
        for r in relations:
            relation = (r["database_name"], r["schema_name"], r["name"])
            asset = table_asset(
                schema_keys[relation[:2]], r["schema_name"], r["name"], r["kind"], comment=r["comment"],
                primary_key=constraints.primary.get(relation, []), unique_keys=constraints.unique.get(relation, []),
                foreign_keys=constraints.foreign.get(relation, []), definition=r["definition"],
            )  # fmt: skip
            keys[relation] = asset["key"]
            tables.append(asset)
        for start in range(0, len(tables), self._batch_size):
            yield tables[start : start + self._batch_size]
        await self._call(lambda conn: conn.execute(COLUMNS_SQL), "read columns")
        while rows := await self._call(lambda conn: _as_dicts(conn, self._batch_size), "read columns"):
            yield list(self._columns(rows, keys, constraints))

    def _columns(
        self, rows: Iterable[Row], keys: dict[Relation, str], constraints: _Constraints
    ) -> Iterable[AssetDict]:
        for c in rows:
            relation = (c["database_name"], c["schema_name"], c["table_name"])
            if relation not in keys:  # a temporary or internal relation's columns
                continue
            generated: dict[str, Any] = {"generated": True} if c["is_generated"] else {}
            yield column_asset(
                keys[relation], c["column_name"], c["data_type"], c["column_index"], nullable=c["is_nullable"],
                comment=c["comment"], default=c["column_default"],
                primary_key=c["column_name"] in constraints.primary.get(relation, ()), **generated,
            )  # fmt: skip


def _open(path: str) -> duckdb.DuckDBPyConnection:
    # Read-only, and no extension installed or loaded on the way: reading a catalog needs none.
    settings: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    return duckdb.connect(path, read_only=True, config=settings)


def _as_dicts(result: duckdb.DuckDBPyConnection, size: int | None) -> list[Row]:
    """The next `size` rows of the pending result (None: all of them) as dicts."""
    names = [d[0] for d in result.description or ()]
    rows = result.fetchall() if size is None else result.fetchmany(size)
    return [dict(zip(names, row, strict=True)) for row in rows]


class _Constraints:
    """Primary, unique and foreign keys by relation. DuckDB refuses foreign keys across schemas: a foreign key's
    referenced table is in its own schema."""

    def __init__(self, rows: list[Row]) -> None:
        self.primary: dict[Relation, list[str]] = {}
        self.unique: dict[Relation, list[list[str]]] = {}
        self.foreign: dict[Relation, list[dict[str, Any]]] = {}
        for row in rows:
            relation = (row["database_name"], row["schema_name"], row["table_name"])
            columns = list(row["constraint_column_names"])
            if row["constraint_type"] == "PRIMARY KEY":
                self.primary[relation] = columns
            elif row["constraint_type"] == "UNIQUE":
                self.unique.setdefault(relation, []).append(columns)
            else:
                self.foreign.setdefault(relation, []).append(foreign_key(
                    row["constraint_name"], columns, row["schema_name"], row["referenced_table"],
                    list(row["referenced_column_names"]),
                ))  # fmt: skip
