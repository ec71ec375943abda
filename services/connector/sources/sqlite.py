"""SQLite source: one database file, its schema `main`: tables, views, columns, primary, unique and foreign keys.

The file is opened read-only (a `mode=ro` URI) and read in one read transaction, by set-based queries that join
sqlite_schema with pragma table-valued functions (one query for all tables' columns, one for all foreign keys, one
for all unique keys), whatever the number of tables. What SQLite does not have is reported empty: comments (SQLite
keeps none), schemas other than `main` (a file has no attached databases), names of foreign keys (not exposed by
pragma_foreign_key_list) and nested types (a column's type is its declared type as written, e.g. JSON).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote

import aiosqlite

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    column_asset,
    foreign_key,
    key_part,
    schema_asset,
    table_asset,
)
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.files import DatabaseFileConfig, existing_database_file
from services.core.sources.uploads import NothingToConfigure

SCHEMA = "main"
PROGRESS_STEPS = 1000  # SQLite asks whether to stop every this many virtual machine instructions
USER_OBJECTS = "m.name NOT GLOB 'sqlite_*'"  # sqlite_sequence, sqlite_stat1, ...: SQLite's own
TABLES = f"m.type = 'table' AND m.rootpage <> 0 AND {USER_OBJECTS}"  # ordinary tables (virtual ones have no pages)
# Views and virtual tables: reading their columns fails for a view over a dropped table or a virtual table whose
# module is not loaded here, so they are read apart (and, if that fails, one by one to name the broken ones).
DERIVED = f"m.rootpage = 0 AND m.type IN ('table', 'view') AND {USER_OBJECTS}"

OBJECTS_SQL = f"SELECT m.name, m.type, m.rootpage = 0 AND m.type = 'table' AS virtual, m.sql FROM sqlite_schema m " \
    f"WHERE ({TABLES}) OR ({DERIVED}) ORDER BY m.name"  # fmt: skip
COLUMNS_SQL = """
SELECT m.name AS relation, p.cid, p.name, p.type, p."notnull", p.dflt_value, p.pk, p.hidden
FROM sqlite_schema m JOIN pragma_table_xinfo(m.name) p
WHERE ({where}) AND p.hidden <> 1
ORDER BY m.name, p.cid
"""
ONE_RELATION_COLUMNS_SQL = """
SELECT ? AS relation, p.cid, p.name, p.type, p."notnull", p.dflt_value, p.pk, p.hidden
FROM pragma_table_xinfo(?) p WHERE p.hidden <> 1 ORDER BY p.cid
"""
FOREIGN_KEYS_SQL = f"""
SELECT m.name AS relation, f.id, f.seq, f."table" AS ref_table, f."from" AS column_name, f."to" AS ref_column
FROM sqlite_schema m JOIN pragma_foreign_key_list(m.name) f
WHERE {TABLES}
ORDER BY m.name, f.id, f.seq
"""
# UNIQUE constraints and CREATE UNIQUE INDEX alike; not partial indexes (unique for some rows only).
UNIQUE_KEYS_SQL = f"""
SELECT m.name AS relation, i.name AS index_name, c.name AS column_name
FROM sqlite_schema m JOIN pragma_index_list(m.name) i JOIN pragma_index_info(i.name) c
WHERE {TABLES} AND i."unique" AND i.origin IN ('u', 'c') AND NOT i.partial
ORDER BY m.name, i.name, c.seqno
"""


class SqliteSource:
    def __init__(self, config: DatabaseFileConfig, batch_size: int = 1000) -> None:
        self.config = config
        self.report = SourceReport()
        self._batch_size = batch_size
        self._conn: aiosqlite.Connection | None = None
        self._cancelled = threading.Event()  # read by the connection's thread, between two steps of a statement

    @classmethod
    def create(
        cls, config: DatabaseFileConfig, credentials: NothingToConfigure, addresses: CheckedAddresses
    ) -> SqliteSource:
        return cls(config)

    async def _connect(self) -> aiosqlite.Connection:
        if self._conn is None:
            try:
                path = existing_database_file(self.config.path, "SQLite")
            except ValueError as refused:
                raise SourceError(str(refused)) from None
            try:
                conn = await aiosqlite.connect(f"file:{quote(path)}?mode=ro", uri=True, isolation_level=None)
            except sqlite3.Error as error:
                raise SourceError(f"Cannot open SQLite database {path}: {error}") from None
            conn.row_factory = aiosqlite.Row
            self._conn = conn
            await conn.set_progress_handler(self._stop_if_cancelled, PROGRESS_STEPS)
            await self._fetch("SELECT count(*) FROM sqlite_schema", f"read {path} as a SQLite database")
        return self._conn

    async def _fetch(self, sql: str, what: str, *parameters: Any) -> list[Any]:
        assert self._conn is not None
        try:
            return list(await self._conn.execute_fetchall(sql, parameters))
        except sqlite3.Error as error:
            raise SourceError(f"Cannot {what}: {type(error).__name__}: {error}") from None

    async def test_connection(self) -> None:
        """Open the file read-only and read its schema table, as a crawl would."""
        await self._connect()

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    def _stop_if_cancelled(self) -> int:
        return int(self._cancelled.is_set())  # non-zero: the statement fails with "interrupted"

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # A flag the statement itself checks every PROGRESS_STEPS steps, rather than sqlite3_interrupt(): that
            # one is lost if it comes before the thread starts the statement, and is unsafe against a connection
            # closing at the same time. A statement queued after this one fails at its first check.
            self._cancelled.set()
            await conn.close()  # queued behind the stopped statement on the connection's thread

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        conn = await self._connect()
        await conn.execute("BEGIN")  # one snapshot for all queries (a shared lock until COMMIT)
        schema = schema_asset(None, SCHEMA)
        yield [schema]
        objects = await self._fetch(OBJECTS_SQL, "list tables and views")
        columns = await self._fetch(COLUMNS_SQL.format(where=TABLES), "read the tables' columns")
        columns += await self._derived_columns([o for o in objects if o["virtual"] or o["type"] == "view"])
        foreign = await self._fetch(FOREIGN_KEYS_SQL, "read foreign keys")
        unique = await self._fetch(UNIQUE_KEYS_SQL, "read unique keys")
        await conn.execute("COMMIT")
        primary = _primary_keys(columns)
        foreign_keys = _foreign_keys(foreign, primary)
        unique_keys = _unique_keys(unique)
        keys = {o["name"]: f"{schema['key']}/{key_part(o['name'])}" for o in objects}
        tables = [
            table_asset(
                schema["key"], SCHEMA, o["name"], "view" if o["type"] == "view" else "table",
                primary_key=primary.get(o["name"], []), unique_keys=unique_keys.get(o["name"], []),
                foreign_keys=foreign_keys.get(o["name"], []),
                definition=o["sql"] if o["type"] == "view" else None,
                **_extras(virtual=bool(o["virtual"])),
            )
            for o in objects
        ]  # fmt: skip
        for batch in _batches(tables, self._batch_size):
            yield batch
        assets = (self._column(keys[c["relation"]], c, primary.get(c["relation"], [])) for c in columns)
        for batch in _batches(assets, self._batch_size):
            yield batch

    async def _derived_columns(self, derived: list[Any]) -> list[Any]:
        """Columns of views and virtual tables: in one query, or, if one of them cannot be read, one by one."""
        if not derived:
            return []
        try:
            return await self._fetch(COLUMNS_SQL.format(where=DERIVED), "read the views' columns")
        except SourceError:
            pass
        found: list[Any] = []
        for o in derived:
            try:
                found += await self._fetch(ONE_RELATION_COLUMNS_SQL, "read columns", o["name"], o["name"])
            except SourceError as error:
                kind = "virtual table" if o["virtual"] else "view"
                self.report.warn(f"{kind} {o['name']}: its columns cannot be read ({error}); catalogued without "
                                 "them.")  # fmt: skip
        return found

    @staticmethod
    def _column(table_key: str, c: Any, primary_key: list[str]) -> AssetDict:
        # A lone INTEGER PRIMARY KEY is the rowid: never NULL, though SQLite does not mark it NOT NULL.
        rowid = primary_key == [c["name"]] and c["type"].upper() == "INTEGER"
        return column_asset(
            table_key, c["name"], c["type"], c["cid"] + 1, nullable=not (c["notnull"] or rowid),
            default=c["dflt_value"], primary_key=c["pk"] > 0, **_extras(generated=c["hidden"] in (2, 3)),
        )  # fmt: skip


def _extras(**flags: bool) -> dict[str, Any]:
    """The platform's own attributes that are set (virtual tables and generated columns are the exception)."""
    return {name: True for name, value in flags.items() if value}


def _primary_keys(columns: Iterable[Any]) -> dict[str, list[str]]:
    ranked: dict[str, list[tuple[int, str]]] = {}
    for c in columns:
        if c["pk"]:
            ranked.setdefault(c["relation"], []).append((c["pk"], c["name"]))
    return {relation: [name for _, name in sorted(pk)] for relation, pk in ranked.items()}


def _foreign_keys(rows: Iterable[Any], primary: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[tuple[str, int], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row["relation"], row["id"]), []).append(row)
    found: dict[str, list[dict[str, Any]]] = {}
    for (relation, _), parts in grouped.items():
        referenced = [p["ref_column"] for p in parts]
        if None in referenced:  # REFERENCES t without columns: t's primary key
            referenced = primary.get(parts[0]["ref_table"], referenced)
        found.setdefault(relation, []).append(
            foreign_key(None, [p["column_name"] for p in parts], SCHEMA, parts[0]["ref_table"], referenced)
        )
    return found


def _unique_keys(rows: Iterable[Any]) -> dict[str, list[list[str]]]:
    indexes: dict[tuple[str, str], list[str | None]] = {}
    for row in rows:
        indexes.setdefault((row["relation"], row["index_name"]), []).append(row["column_name"])
    found: dict[str, list[list[str]]] = {}
    for (relation, _), columns in indexes.items():
        if None not in columns:  # an index on an expression is no key of columns
            found.setdefault(relation, []).append([c for c in columns if c is not None])
    return found


def _batches(items: Iterable[AssetDict], size: int) -> Iterable[list[AssetDict]]:
    batch: list[AssetDict] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
