"""MySQL and MariaDB source: databases (as schemas), tables, views, columns, primary, unique and foreign keys.

Read from information_schema in a fixed number of set-based queries whatever the number of tables; columns
stream through an unbuffered (server-side) cursor so that progress is reported while a large catalog is read.
A cancelled crawl kills its running statement at the server (KILL QUERY over a second connection): a metadata
read stuck behind a lock, or one streaming columns, would otherwise run on after the run ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiomysql
import pymysql
from pymysql.constants import CLIENT, CR, ER

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    column_asset,
    foreign_key,
    schema_asset,
    selected,
    table_asset,
)
from services.connector.sources.tls import pinned_tls_context
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.mysql import MySQLConfig, MySQLCredentials

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})
# information_schema.TABLES.TABLE_TYPE -> kind; SEQUENCE (MariaDB) and TEMPORARY are not crawled.
TABLE_KINDS = {"BASE TABLE": "table", "SYSTEM VERSIONED": "table", "VIEW": "view"}
KILL_TIMEOUT_S = 5.0

# {comment}: SCHEMATA.SCHEMA_COMMENT where the server has it (MariaDB 10.5+), else NULL. Never statistics
# (TABLE_ROWS, DATA_LENGTH, UPDATE_TIME, AUTO_INCREMENT): they change without the schema changing.
SCHEMAS_SQL = """
SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, {comment}
FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME
"""
TABLES_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COMMENT
FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({schemas}) ORDER BY TABLE_SCHEMA, TABLE_NAME
"""
VIEWS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION, SECURITY_TYPE
FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN ({schemas})
"""
KEYS_SQL = """
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, c.CONSTRAINT_TYPE, k.COLUMN_NAME,
       k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME
FROM information_schema.TABLE_CONSTRAINTS c
JOIN information_schema.KEY_COLUMN_USAGE k
  ON k.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = c.CONSTRAINT_NAME
 AND k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA IN ({schemas}) AND k.TABLE_SCHEMA IN ({schemas})
  AND c.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')
ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""
# MariaDB's JSON is LONGTEXT with a CHECK (json_valid(`column`)) named after the column: report it as json.
JSON_COLUMNS_SQL = """
SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA IN ({schemas}) AND CHECK_CLAUSE = CONCAT('json_valid(`', CONSTRAINT_NAME, '`)')
"""
# COLUMN_KEY is not read: it shows PRI for a UNIQUE NOT NULL key of a table without a primary key.
COLUMNS_SQL = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE, EXTRA,
       COLUMN_COMMENT
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({schemas}) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION
"""

Row = tuple[Any, ...]


class _TlsUnavailable(Exception):
    """The server offers no TLS although the configuration requires it."""


class _Connection(aiomysql.Connection):  # type: ignore[misc]
    """aiomysql carries on in clear when the server offers no TLS; with `tls_required` it stops before the login."""

    tls_required = False

    async def _request_authentication(self) -> None:
        if self.tls_required and not self.server_capabilities & CLIENT.SSL:
            raise _TlsUnavailable
        await super()._request_authentication()


def tls_for(config: MySQLConfig) -> ssl.SSLContext | None:
    """The TLS context of a connection dialled to an IP address that speaks to, and checks, `config.host`.
    MYSQL_SSL_CA names the trusted CAs (PEM); else the system's trust store."""
    if config.ssl_mode == "disabled":
        return None
    return pinned_tls_context(
        config.host, verify_certificate=config.ssl_mode in ("verify_ca", "verify_identity"),
        verify_hostname=config.ssl_mode == "verify_identity", cafile=os.environ.get("MYSQL_SSL_CA"),
    )  # fmt: skip


def _server(version: str) -> tuple[bool, tuple[int, int]]:
    """(is MariaDB, (major, minor)) from the handshake's version, e.g. `5.5.5-10.11.6-MariaDB-0+deb12u1`."""
    text = version.removeprefix("5.5.5-")
    number = re.match(r"(\d+)\.(\d+)", text)
    return "mariadb" in text.lower(), (int(number[1]), int(number[2])) if number else (0, 0)


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


class MySQLSource:
    def __init__(
        self, config: MySQLConfig, credentials: MySQLCredentials, addresses: tuple[str, ...], batch_size: int = 1000
    ) -> None:
        self.config = config
        self.report = SourceReport()
        self._password = credentials.password
        self._addresses = addresses
        self._batch_size = batch_size
        self._conn: Any = None
        self._connection_id: int | None = None
        self._running = False  # a statement may still run at the server (cancelled or unfinished)
        self._mariadb, self._version = False, (0, 0)  # the server's, known once connected
        self._warned: set[str] = set()

    @classmethod
    def create(cls, config: MySQLConfig, credentials: MySQLCredentials, addresses: CheckedAddresses) -> MySQLSource:
        return cls(config, credentials, addresses.of(config.host, config.port))

    async def _open(self) -> Any:
        """A new connection to the first checked address that answers; never to the name, which could resolve
        elsewhere by now."""
        c = self.config
        failure: BaseException | None = None
        for address in self._addresses:
            conn = _Connection(
                host=address, port=c.port, user=c.username, password=self._password, db=c.database,
                charset="utf8mb4", autocommit=True, connect_timeout=15, ssl=tls_for(c),
                program_name="ingestion-connector",
            )  # fmt: skip
            conn.tls_required = c.ssl_mode != "preferred"
            try:
                await conn._connect()
                return conn
            except asyncio.CancelledError:
                conn.close()  # aiomysql closes a failed connection, but not a cancelled one
                raise
            except _TlsUnavailable:
                failure = SourceError(f"the server offers no TLS and sslMode is '{c.ssl_mode}'")
                break
            except pymysql.err.OperationalError as error:
                failure = error
                if error.args[0] != CR.CR_CONN_HOST_ERROR:
                    break  # the server answered (wrong password, unknown database): another address would too
            except (pymysql.err.MySQLError, ssl.SSLError) as error:
                failure = error
                break
        dialled = "" if self._addresses == (c.host,) else f" ({', '.join(self._addresses)})"
        database = f"/{c.database}" if c.database else ""
        cause = f"{type(failure).__name__}: {failure}" if not isinstance(failure, SourceError) else str(failure)
        if isinstance(failure, pymysql.err.OperationalError) and isinstance(failure.__cause__, OSError):
            cause += f" ({failure.__cause__})"
        raise SourceError(f"Cannot connect to MySQL/MariaDB at {c.host}:{c.port}{dialled}{database} as "
                          f"'{c.username}': {cause}")  # fmt: skip

    async def _connect(self) -> Any:
        if self._conn is None:
            self._conn = await self._open()
            self._mariadb, self._version = _server(self._conn.get_server_info())
            cursor = await self._conn.cursor()
            await cursor.execute("SELECT CONNECTION_ID()")  # the id close() kills statements of
            (self._connection_id,) = await cursor.fetchone()
        return self._conn

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> AsyncIterator[list[Row]]:
        """A statement's rows in batches as the server sends them (an unbuffered cursor: never held whole); its
        warnings (a view that cannot be opened, ...) go to the report."""
        conn = await self._connect()
        self._running = True  # stays set if cancelled or abandoned: close() then kills the statement
        try:
            cursor = await conn.cursor(aiomysql.SSCursor)
            await cursor.execute(sql, args)
            while rows := await cursor.fetchmany(self._batch_size):
                yield rows
            if getattr(cursor._result, "warning_count", 0):  # known at the end of an unbuffered result only
                for _level, _code, message in await conn.show_warnings() or ():
                    self._warn(message)
        except pymysql.err.MySQLError as error:
            raise self._read_error(error) from None
        self._running = False

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [row async for rows in self._rows(sql, args) for row in rows]

    def _warn(self, message: str) -> None:
        if message not in self._warned:  # a broken view is reported by each statement that opens it
            self._warned.add(message)
            self.report.warn(message)

    def _read_error(self, error: pymysql.err.MySQLError) -> SourceError:
        return SourceError(f"Connected to {self.config.host}:{self.config.port} as '{self.config.username}', but "
                           f"cannot read information_schema: {type(error).__name__}: {error}")  # fmt: skip

    async def test_connection(self) -> None:
        """Connect and read the databases this configuration selects, as a crawl would."""
        await self._schemas()

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if not self._running:
            with contextlib.suppress(OSError, TimeoutError, pymysql.err.MySQLError):
                async with asyncio.timeout(2):
                    await conn.ensure_closed()  # a polite QUIT
            conn.close()
            return
        conn.close()  # nothing reads its answer any more; the server only notices once the statement ends
        if self._connection_id is None:
            return  # cancelled before the server told us the connection's id: closing it is all we can do
        try:
            async with asyncio.timeout(KILL_TIMEOUT_S):
                await self._kill_query()
        except pymysql.err.OperationalError as error:
            if error.args[0] != ER.NO_SUCH_THREAD:  # else the connection had already ended, and its statement
                self._kill_failed(error)
        except (SourceError, OSError, TimeoutError, pymysql.err.MySQLError) as error:
            self._kill_failed(error)

    def _kill_failed(self, error: Exception) -> None:
        self.report.warn(f"Could not stop the crawl's statement at the server ({type(error).__name__}: {error}); "
                         "it runs on until it ends.")  # fmt: skip

    async def _kill_query(self) -> None:
        """KILL QUERY the crawl's connection over a second one (a user may always kill its own statements)."""
        killer = await self._open()
        try:
            cursor = await killer.cursor()
            await cursor.execute("KILL QUERY %s", (self._connection_id,))
        finally:
            killer.close()

    def _selected(self, name: str) -> bool:
        config = self.config
        if name.lower() in SYSTEM_SCHEMAS or (config.database is not None and name != config.database):
            return False
        return selected(name, config.include_schemas, config.exclude_schemas)

    async def _schemas(self) -> list[Row]:
        await self._connect()
        comment = "SCHEMA_COMMENT" if self._mariadb and self._version >= (10, 5) else "NULL"
        return [row for row in await self._fetch(SCHEMAS_SQL.format(comment=comment)) if self._selected(row[0])]

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        schemas = await self._schemas()
        if not schemas:
            self.report.warn("No database matched database/includeSchemas/excludeSchemas (system databases are "
                             f"never crawled), or user '{self.config.username}' has no privilege on any.")  # fmt: skip
            return
        schema_assets = [schema_asset(None, name, comment or None, characterSet=charset, collation=collation)
                         for name, charset, collation, comment in schemas]  # fmt: skip
        schema_keys = {asset["name"]: asset["key"] for asset in schema_assets}
        yield schema_assets
        names = list(schema_keys)
        in_names = _placeholders(len(names))
        tables = await self._fetch(TABLES_SQL.format(schemas=in_names), names)
        views = {(s, t): (d, security) for s, t, d, security in await self._fetch(VIEWS_SQL.format(schemas=in_names),
                                                                                    names)}  # fmt: skip
        keys = _Keys(await self._fetch(KEYS_SQL.format(schemas=in_names), names + names))
        json_columns: set[tuple[str, str, str]] = set()
        if self._mariadb and self._version >= (10, 3):  # information_schema.CHECK_CONSTRAINTS: MariaDB 10.3.10+
            json_columns = set(await self._fetch(JSON_COLUMNS_SQL.format(schemas=in_names), names))
        table_keys: dict[tuple[str, str], str] = {}
        batch: list[AssetDict] = []
        for schema, name, table_type, engine, comment in tables:
            kind = TABLE_KINDS.get(table_type)
            if kind is None:
                continue
            asset = self._table(schema_keys[schema], schema, name, table_type, engine, comment, views, keys)
            table_keys[(schema, name)] = asset["key"]
            batch.append(asset)
            if len(batch) >= self._batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        async for rows in self._rows(COLUMNS_SQL.format(schemas=in_names), names):
            batch = [
                _column(table_keys[(row[0], row[1])], row, keys, json_columns, self._mariadb)
                for row in rows if (row[0], row[1]) in table_keys
            ]  # fmt: skip
            if batch:
                yield batch

    def _table(
        self, schema_key: str, schema: str, name: str, table_type: str, engine: str | None, comment: str,
        views: dict[tuple[str, str], tuple[str, str]], keys: _Keys,
    ) -> AssetDict:  # fmt: skip
        if table_type == "VIEW":
            # A view has no comment of its own: TABLE_COMMENT says VIEW, or why the view cannot be opened.
            if comment not in ("VIEW", ""):
                self._warn(comment)
            definition, security = views.get((schema, name), ("", None))
            if not definition:
                self._warn(f"View {schema}.{name}: user '{self.config.username}' cannot read its definition (it "
                           "needs SHOW VIEW on it).")  # fmt: skip
            return table_asset(schema_key, schema, name, "view", definition=definition or None, securityType=security)
        if engine is None:  # the table could not be opened; TABLE_COMMENT says why
            self._warn(f"Table {schema}.{name}: {comment or 'cannot be opened'}")
            comment = ""
        table = (schema, name)
        return table_asset(
            schema_key, schema, name, "table", comment=comment or None, primary_key=keys.primary.get(table, ()),
            unique_keys=keys.unique.get(table, ()), foreign_keys=keys.foreign.get(table, ()), engine=engine,
            systemVersioned=table_type == "SYSTEM VERSIONED",
        )  # fmt: skip


class _Keys:
    """Primary, unique and foreign keys by (schema, table), from KEYS_SQL rows (ordered by key and position)."""

    def __init__(self, rows: list[Row]) -> None:
        self.primary: dict[tuple[str, str], list[str]] = {}
        self.unique: dict[tuple[str, str], list[list[str]]] = {}
        self.foreign: dict[tuple[str, str], list[dict[str, Any]]] = {}
        grouped: dict[tuple[str, str, str, str], list[Row]] = {}
        for row in rows:
            grouped.setdefault((row[0], row[1], row[2], row[3]), []).append(row)
        for (schema, table, name, kind), key_rows in grouped.items():
            columns = [row[4] for row in key_rows]
            if kind == "PRIMARY KEY":
                self.primary[(schema, table)] = columns
            elif kind == "UNIQUE":
                self.unique.setdefault((schema, table), []).append(columns)
            else:
                first = key_rows[0]
                self.foreign.setdefault((schema, table), []).append(
                    foreign_key(name, columns, first[5], first[6], [row[7] for row in key_rows])
                )
        self.primary_columns = {(s, t, c) for (s, t), columns in self.primary.items() for c in columns}


def _column(table_key: str, row: Row, keys: _Keys, json_columns: set[tuple[str, str, str]], mariadb: bool) -> AssetDict:
    schema, table, name, ordinal, default, nullable, column_type, extra, comment = row
    if (schema, table, name) in json_columns and column_type == "longtext":
        column_type = "json"
    if mariadb and default == "NULL":
        default = None  # MariaDB quotes literal defaults: a bare NULL is no default at all
    return column_asset(
        table_key, name, column_type, ordinal, nullable=nullable == "YES", comment=comment or None, default=default,
        primary_key=(schema, table, name) in keys.primary_columns, extra=extra or None,
    )  # fmt: skip
