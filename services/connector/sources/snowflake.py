"""Snowflake source: databases, schemas, tables, views, columns and keys from INFORMATION_SCHEMA and SHOW ... KEYS.

A fixed number of statements per database (schemata, tables, views, columns, and SHOW PRIMARY/UNIQUE/IMPORTED KEYS
IN DATABASE; IN ACCOUNT once when every database is crawled), whatever the number of tables; columns stream in
batches. Over https the connector reaches Snowflake only through a loopback CONNECT tunnel that dials the checked
addresses (see PinnedTunnel); over http (an emulator) it dials the checked address itself.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from snowflake.connector.aio import Connection, DictCursor, connect
from snowflake.connector.errors import Error as SnowflakeError

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    column_asset,
    container_asset,
    foreign_key,
    schema_asset,
    table_asset,
)
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.endpoints import is_public_address
from services.core.sources.snowflake import SnowflakeConfig, SnowflakeCredentials

SYSTEM_DATABASES = frozenset({"SNOWFLAKE"})  # Snowflake's own (ACCOUNT_USAGE & co.), shared into every account
TABLE_KINDS = {
    "BASE TABLE": "table", "TEMPORARY TABLE": "table", "LOCAL TEMPORARY": "table", "EVENT TABLE": "table",
    "VIEW": "view", "MATERIALIZED VIEW": "materialized_view", "EXTERNAL TABLE": "external_table",
}  # fmt: skip
_NOT_INFO = "TABLE_SCHEMA <> 'INFORMATION_SCHEMA'"
SCHEMATA_SQL = "SELECT SCHEMA_NAME, COMMENT FROM {db}.INFORMATION_SCHEMA.SCHEMATA " \
               "WHERE SCHEMA_NAME <> 'INFORMATION_SCHEMA' ORDER BY SCHEMA_NAME"  # fmt: skip
TABLES_SQL = "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COMMENT, IS_TRANSIENT, CLUSTERING_KEY " \
             f"FROM {{db}}.INFORMATION_SCHEMA.TABLES WHERE {_NOT_INFO} ORDER BY TABLE_SCHEMA, TABLE_NAME"  # fmt: skip
VIEWS_SQL = "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION, IS_SECURE, COMMENT " \
            f"FROM {{db}}.INFORMATION_SCHEMA.VIEWS WHERE {_NOT_INFO} ORDER BY TABLE_SCHEMA, TABLE_NAME"  # fmt: skip
COLUMNS_SQL = "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, IS_NULLABLE, DATA_TYPE, " \
              "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, COLUMN_DEFAULT, COMMENT " \
              f"FROM {{db}}.INFORMATION_SCHEMA.COLUMNS WHERE {_NOT_INFO} " \
              "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"  # fmt: skip

TableRef = tuple[str, str, str]  # database, schema, table


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def identifier(name: str) -> str:
    """The stored name of a database named in the configuration: unquoted identifiers are upper-cased."""
    simple = name.replace("_", "a").replace("$", "a").isalnum() and not name[0].isdigit() and name.isascii()
    return name.upper() if simple else name


def data_type(row: dict[str, Any]) -> str:
    """The type as Snowflake's DESCRIBE spells it: VARCHAR(200), NUMBER(10,2), BINARY(16); others by name."""
    native, length, precision = row["DATA_TYPE"], row["CHARACTER_MAXIMUM_LENGTH"], row["NUMERIC_PRECISION"]
    if native == "TEXT" and length is not None:
        return f"VARCHAR({length})"
    if native == "NUMBER" and precision is not None:
        return f"NUMBER({precision},{row['NUMERIC_SCALE'] or 0})"
    if native == "BINARY" and length is not None:
        return f"BINARY({length})"
    return str(native)


@dataclass
class Keys:
    """Primary, unique and foreign keys by table, from SHOW PRIMARY/UNIQUE/IMPORTED KEYS."""

    primary: dict[TableRef, list[str]] = field(default_factory=dict)
    unique: dict[TableRef, list[list[str]]] = field(default_factory=dict)
    foreign: dict[TableRef, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, primary: Iterable[dict[str, Any]], unique: Iterable[dict[str, Any]],
                  imported: Iterable[dict[str, Any]], report: SourceReport) -> Keys:  # fmt: skip
        keys = cls()
        for (ref, _name), columns in sorted(_grouped(primary, "").items()):
            keys.primary[ref] = [column for _, column in sorted(columns)]
        for (ref, _name), columns in sorted(_grouped(unique, "").items()):
            keys.unique.setdefault(ref, []).append([column for _, column in sorted(columns)])
        for (ref, name), columns in sorted(_grouped(imported, "fk_").items()):
            pairs = [pair for _, pair in sorted(columns, key=lambda column: column[0])]
            target = next(iter(pairs))[2]
            if not target["pk_table_name"]:
                report.warn(f"Foreign key {name} of {'.'.join(ref)} names no referenced table; it is left out.")
                continue
            reference = foreign_key(name, [fk for fk, _, _ in pairs], target["pk_schema_name"],
                                    target["pk_table_name"], [pk for _, pk, _ in pairs])  # fmt: skip
            if target["pk_database_name"] != ref[0]:
                reference["references"]["database"] = target["pk_database_name"]
            keys.foreign.setdefault(ref, []).append(reference)
        return keys


def _grouped(rows: Iterable[dict[str, Any]], prefix: str) -> dict[tuple[TableRef, str], list[tuple[int, Any]]]:
    """SHOW ... KEYS rows grouped by table and constraint, each column with its key_sequence."""
    groups: dict[tuple[TableRef, str], list[tuple[int, Any]]] = {}
    for row in rows:
        ref = (row[f"{prefix}database_name"], row[f"{prefix}schema_name"], row[f"{prefix}table_name"])
        if prefix:  # imported keys: (fk column, pk column, row)
            name, column = row["fk_name"], (row["fk_column_name"], row["pk_column_name"], row)
        else:
            name, column = row["constraint_name"], row["column_name"]
        groups.setdefault((ref, name), []).append((int(row["key_sequence"]), column))
    return groups


class PinnedTunnel:
    """An HTTP CONNECT proxy on loopback, the connector's only way out over https.

    The configured server is dialled at its checked addresses only: the connector never resolves its name (it hands
    the name to the proxy), and TLS still speaks to and verifies the name end to end. Any other host the server
    sends the connector to (result chunks on cloud storage) is resolved here once and dialled only if public, unless
    the configured server is itself private (then this installation allows private sources).
    """

    def __init__(self, host: str, port: int, addresses: tuple[str, ...]) -> None:
        self._server_address = (host.lower(), port)
        self._addresses = addresses
        self._allow_private = not all(is_public_address(address) for address in addresses)
        self._listener: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.refused: list[str] = []  # hosts not dialled, for the error message

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            async with asyncio.timeout(15):
                request = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(request) != 3 or request[0] != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, _, port = request[1].rpartition(":")
            upstream = await self._dial(host.strip("[]").lower(), int(port))
            if upstream is None:
                writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_relay(reader, upstream[1]), _relay(upstream[0], writer), return_exceptions=True)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the connector sees the tunnel fail and reports it
        finally:
            writer.close()
            self._connections.discard(task)

    async def _dial(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if (host, port) == self._server_address:
            addresses = self._addresses
        else:
            async with asyncio.timeout(10):
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
            if not self._allow_private and not all(is_public_address(address) for address in addresses):
                self.refused.append(f"{host}:{port}")
                return None
        for address in addresses:  # in order, as resolved
            try:
                async with asyncio.timeout(15):
                    return await asyncio.open_connection(address, port)
            except (OSError, TimeoutError):
                continue
        return None


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


class SnowflakeSource:
    def __init__(
        self, config: SnowflakeConfig, credentials: SnowflakeCredentials, addresses: tuple[str, ...],
        batch_size: int = 1000, login_timeout_s: int = 30, ca_file: str | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.report = SourceReport()
        self._password = credentials.password
        self._addresses = addresses
        self._batch_size = batch_size
        self._login_timeout_s = login_timeout_s
        self._ca_file = ca_file  # trusted CAs (PEM) instead of the system's: tests, TLS-inspecting proxies
        self._conn: Connection | None = None
        self._tunnel: PinnedTunnel | None = None
        self._inflight: asyncio.Future[Any] | None = None

    @classmethod
    def create(
        cls, config: SnowflakeConfig, credentials: SnowflakeCredentials, addresses: CheckedAddresses
    ) -> SnowflakeSource:
        return cls(config, credentials, addresses.of(config.server_host, config.server_port))

    @property
    def _server(self) -> str:
        c = self.config
        dialled = "" if self._addresses == (c.server_host,) else f" ({', '.join(self._addresses)})"
        return f"{c.protocol}://{c.server_host}:{c.server_port}{dialled} as '{c.username}'"

    async def _connect(self) -> Connection:
        if self._conn is None:
            c = self.config
            options: dict[str, Any] = {"host": c.server_host, "use_proxy_env": False}
            if c.protocol == "http":  # no certificate to check: dial the checked address itself
                options["host"] = self._addresses[0]
            else:  # TLS speaks to and verifies the name; the tunnel dials the checked addresses
                self._tunnel = PinnedTunnel(c.server_host, c.server_port, self._addresses)
                options["proxy"] = await self._tunnel.start()
                if self._ca_file:
                    options["custom_root_store_path"] = self._ca_file
            try:
                self._conn = await connect(
                    account=c.account, user=c.username, password=self._password, port=c.server_port,
                    protocol=c.protocol, warehouse=c.warehouse, role=c.role, login_timeout=self._login_timeout_s,
                    client_session_keep_alive=False, enable_server_session_keep_alive_auto_detection=False,
                    session_parameters={"QUERY_TAG": "ingestion-connector"}, **options,
                )  # fmt: skip
            except SnowflakeError as error:
                await self.close()
                raise SourceError(f"Cannot log in to Snowflake at {self._server}: {_message(error)}") from None
        return self._conn

    async def _rows(self, sql: str) -> list[dict[str, Any]]:
        cursor = await self._execute(sql)
        try:
            rows: list[dict[str, Any]] = await cursor.fetchall()
        finally:
            cursor.close()
        return rows

    async def _execute(self, sql: str) -> DictCursor:
        """Run one statement; close() cancels it, and a cancelled statement is aborted at the server (the connector
        sends Snowflake's abort request for it)."""
        cursor = (await self._connect()).cursor(DictCursor)
        self._inflight = asyncio.ensure_future(cursor.execute(sql))
        try:
            await self._inflight
        except SnowflakeError as error:
            raise SourceError(f"Snowflake at {self._server} refused `{sql[:80]}`: {_message(error)}") from None
        finally:
            self._inflight = None
        return cursor

    async def test_connection(self) -> None:
        """Log in and read a database's schemas as a crawl does (which needs the warehouse, unlike SHOW)."""
        databases = [identifier(self.config.database)] if self.config.database else await self._databases()
        if databases:
            await self._rows(f"{SCHEMATA_SQL.format(db=quote(databases[0]))} LIMIT 1")

    async def _databases(self) -> list[str]:
        return [row["name"] for row in await self._rows("SHOW DATABASES") if row["name"] not in SYSTEM_DATABASES]

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    async def close(self) -> None:
        inflight, conn, tunnel = self._inflight, self._conn, self._tunnel
        self._conn = self._tunnel = None
        if inflight is not None and not inflight.done():
            inflight.cancel()  # the connector aborts the statement at the server
            await asyncio.wait([inflight], timeout=10)
        try:
            if conn is not None:
                async with asyncio.timeout(10):
                    await conn.close(retry=False)  # log out: the session ends at the server
        except (SnowflakeError, OSError, TimeoutError):
            pass  # the session expires at the server on its own
        finally:
            if tunnel is not None:
                await tunnel.close()

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        keys: Keys | None = None
        if self.config.database:
            databases = [identifier(self.config.database)]
        else:
            databases = await self._databases()
            keys = await self._keys("IN ACCOUNT")
            if not databases:
                self.report.warn(f"User '{self.config.username}' sees no database.")
        for database in databases:
            async for batch in self._crawl_database(database, keys):
                yield batch

    async def _keys(self, scope: str) -> Keys:
        rows: dict[str, list[dict[str, Any]]] = {}
        for kind in ("PRIMARY", "UNIQUE", "IMPORTED"):
            try:
                rows[kind] = await self._rows(f"SHOW {kind} KEYS {scope}")
            except SourceError as error:
                self.report.warn(f"{kind.capitalize()} keys ({scope}) not read: {error}")
                rows[kind] = []
        return Keys.from_rows(rows["PRIMARY"], rows["UNIQUE"], rows["IMPORTED"], self.report)

    async def _crawl_database(self, database: str, keys: Keys | None) -> AsyncIterator[list[AssetDict]]:
        db = quote(database)
        try:
            schemas = await self._rows(SCHEMATA_SQL.format(db=db))
            tables = await self._rows(TABLES_SQL.format(db=db))
            views = {(v["TABLE_SCHEMA"], v["TABLE_NAME"]): v for v in await self._rows(VIEWS_SQL.format(db=db))}
        except SourceError as error:
            if self.config.database:
                raise
            self.report.warn(f"Database {database} skipped: {error}")
            return
        if keys is None:
            keys = await self._keys(f"IN DATABASE {db}")
        container = container_asset(database, "database")
        schema_keys: dict[str, str] = {}
        batch = [container]
        for s in schemas:
            asset = schema_asset(container["key"], s["SCHEMA_NAME"], s["COMMENT"])
            schema_keys[s["SCHEMA_NAME"]] = asset["key"]
            batch.append(asset)
        yield batch
        table_keys: dict[tuple[str, str], tuple[str, list[str]]] = {}
        batch = []
        listed = {(t["TABLE_SCHEMA"], t["TABLE_NAME"]) for t in tables}
        # A view missing from TABLES (fakesnow lists views in VIEWS only) is still a view.
        rows = tables + [{"TABLE_SCHEMA": s, "TABLE_NAME": n, "TABLE_TYPE": "VIEW", "COMMENT": v["COMMENT"]}
                         for (s, n), v in views.items() if (s, n) not in listed]  # fmt: skip
        for t in rows:
            schema, name = t["TABLE_SCHEMA"], t["TABLE_NAME"]
            if schema not in schema_keys:
                continue  # created after the schemas were read: the next crawl has it
            ref = (database, schema, name)
            asset = self._table(schema_keys[schema], t, views.get((schema, name)), keys, ref)
            table_keys[(schema, name)] = (asset["key"], keys.primary.get(ref, []))
            batch.append(asset)
            if len(batch) >= self._batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        async for columns in self._columns(db, table_keys):
            yield columns

    def _table(self, schema_key: str, t: dict[str, Any], view: dict[str, Any] | None, keys: Keys,
               ref: TableRef) -> AssetDict:  # fmt: skip
        kind = TABLE_KINDS.get(t["TABLE_TYPE"])
        if kind is None:
            self.report.warn(f"{'.'.join(ref)} is a {t['TABLE_TYPE']}, catalogued as a table.")
            kind = "table"
        extras: dict[str, Any] = {}
        if kind == "table":
            extras = {"transient": t.get("IS_TRANSIENT") == "YES", "clusteringKey": t.get("CLUSTERING_KEY")}
        if view is not None:
            extras = {"secure": view["IS_SECURE"] == "YES", "definition": view["VIEW_DEFINITION"]}
        return table_asset(
            schema_key, ref[1], ref[2], kind, comment=t["COMMENT"], primary_key=keys.primary.get(ref, []),
            unique_keys=keys.unique.get(ref, []), foreign_keys=keys.foreign.get(ref, []), **extras,
        )  # fmt: skip

    async def _columns(
        self, db: str, table_keys: dict[tuple[str, str], tuple[str, list[str]]]
    ) -> AsyncIterator[list[AssetDict]]:
        cursor = await self._execute(COLUMNS_SQL.format(db=db))
        try:
            async for batch in self._column_batches(cursor, table_keys):
                yield batch
        finally:
            cursor.close()

    async def _column_batches(
        self, cursor: DictCursor, table_keys: dict[tuple[str, str], tuple[str, list[str]]]
    ) -> AsyncIterator[list[AssetDict]]:
        while rows := await cursor.fetchmany(self._batch_size):
            batch = []
            for c in rows:
                table = table_keys.get((c["TABLE_SCHEMA"], c["TABLE_NAME"]))
                if table is None:
                    continue  # its table was created after the tables were read
                name = c["COLUMN_NAME"]
                batch.append(column_asset(
                    table[0], name, data_type(c), c["ORDINAL_POSITION"], nullable=c["IS_NULLABLE"] == "YES",
                    comment=c["COMMENT"], default=c["COLUMN_DEFAULT"], primary_key=name in table[1],
                ))  # fmt: skip
            if batch:
                yield batch


def _message(error: SnowflakeError) -> str:
    return f"{type(error).__name__}: {error}"
