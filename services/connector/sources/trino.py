"""Trino source: catalogs, schemas, tables, views, materialized views and columns, read set-based per catalog.

Six queries per catalog whatever its size: information_schema.schemata, .tables and .views of the catalog,
system.metadata.materialized_views and .table_comments, and system.jdbc.columns (information_schema.columns has
no column comments). Trino's metadata has no primary, foreign or unique keys. The official client is synchronous:
each call runs in a worker thread, and close() cancels the running query at the coordinator (DELETE of its
nextUri), so a cancelled crawl stops the work there too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import trino.auth
import trino.client
import trino.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util.connection import create_connection

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    column_asset,
    container_asset,
    key_part,
    schema_asset,
    table_asset,
)
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.trino import TrinoConfig, TrinoCredentials, password_over_https

HIDDEN_SCHEMA = "'information_schema'"  # in every catalog: Trino's own views of the catalog, not the user's data
SYSTEM_CATALOG = "system"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
CANCEL_TIMEOUT_S = 5.0

CATALOGS_SQL = "SELECT catalog_name, connector_name FROM system.metadata.catalogs ORDER BY catalog_name"
SCHEMAS_SQL = "SELECT schema_name FROM {catalog}.information_schema.schemata WHERE schema_name <> " + HIDDEN_SCHEMA
TABLES_SQL = (
    "SELECT table_schema, table_name, table_type FROM {catalog}.information_schema.tables "
    "WHERE table_schema <> " + HIDDEN_SCHEMA
)
VIEWS_SQL = (
    "SELECT table_schema, table_name, view_definition FROM {catalog}.information_schema.views "
    "WHERE table_schema <> " + HIDDEN_SCHEMA
)
MATERIALIZED_VIEWS_SQL = (
    "SELECT schema_name, name, definition FROM system.metadata.materialized_views WHERE catalog_name = {name}"
)
COMMENTS_SQL = (
    "SELECT schema_name, table_name, comment FROM system.metadata.table_comments "
    "WHERE catalog_name = {name} AND schema_name <> " + HIDDEN_SCHEMA + " AND comment IS NOT NULL"
)
COLUMNS_SQL = (
    "SELECT table_schem, table_name, column_name, type_name, is_nullable, remarks, column_def, ordinal_position "
    "FROM system.jdbc.columns WHERE table_cat = {name} AND table_schem <> " + HIDDEN_SCHEMA
)
NULLABLE = {"YES": True, "NO": False}

T = TypeVar("T")
Row = list[Any]


def _take(rows: Iterator[Row], count: int) -> list[Row]:
    return list(itertools.islice(rows, count))


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _PinnedDial:
    """A urllib3 connection that dials the checked addresses, in order, and never resolves its host name again;
    TLS still speaks to and verifies the name (urllib3 uses `host` for SNI and the certificate check)."""

    addresses: tuple[str, ...] = ()
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        failure: OSError | None = None
        for address in self.addresses:
            try:
                return create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)  # fmt: skip
            except OSError as error:
                failure = error
        raise NewConnectionError(self, f"Failed to connect to {', '.join(self.addresses)}: {failure}")  # type: ignore[arg-type]


class PinnedAdapter(HTTPAdapter):
    """Sends requests for `host:port` to the checked addresses only, and refuses any other destination: the
    coordinator names the URL of each next page (nextUri), and must not send the client elsewhere."""

    def __init__(self, scheme: str, host: str, port: int, addresses: tuple[str, ...]) -> None:
        self._origin = (scheme, host.lower().strip("[]"), port)
        pinned = {"addresses": addresses}
        self._pools = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {
                "ConnectionCls": type("PinnedHTTPConnection", (_PinnedDial, HTTPConnection), pinned)}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {
                "ConnectionCls": type("PinnedHTTPSConnection", (_PinnedDial, HTTPSConnection), pinned)}),
        }  # fmt: skip
        super().__init__(max_retries=0)  # the Trino client retries itself

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(str(request.url))
        port = url.port or (443 if url.scheme == "https" else 80)
        if (url.scheme, url.hostname, port) != self._origin:
            scheme, host, expected = self._origin
            raise requests.ConnectionError(
                f"the server sent the client to {url.scheme}://{url.hostname}:{port}, not to the configured "
                f"{scheme}://{host}:{expected}; refusing to follow (configure the address the server advertises)"
            )
        return super().send(request, *args, **kwargs)


class TrinoSource:
    def __init__(
        self, config: TrinoConfig, credentials: TrinoCredentials, addresses: tuple[str, ...],
        batch_size: int = 1000,
    ) -> None:  # fmt: skip
        if mismatch := password_over_https(config, credentials):  # stored before the API checked it
            raise SourceError(f"Trino at {config.host}:{config.port}: {mismatch[1]}.")
        self.config = config
        self.report = SourceReport()
        self._password = credentials.password
        self._addresses = addresses
        self._batch_size = batch_size
        self._session: requests.Session | None = None  # built on first use, with the pinned transport
        self._lock = threading.Lock()  # between the worker thread submitting a query and close()
        self._running: Any = None  # trino.client.TrinoQuery submitted last: close() cancels it
        self._closed = False

    @classmethod
    def create(cls, config: TrinoConfig, credentials: TrinoCredentials, addresses: CheckedAddresses) -> TrinoSource:
        return cls(config, credentials, addresses.of(config.host, config.port))

    def _where(self) -> str:
        c = self.config
        return f"Trino at {'https' if c.https else 'http'}://{c.host}:{c.port} as '{c.username}'"

    def _new_query(self, sql: str) -> Any:
        """A trino.client.TrinoQuery of `sql`, not yet submitted."""
        c = self.config
        scheme = "https" if c.https else "http"
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # no proxy or .netrc from the environment: dial the checked addresses
            self._session.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or True) if c.https else False
            self._session.mount(f"{scheme}://", PinnedAdapter(scheme, c.host, c.port, self._addresses))
        request = trino.client.TrinoRequest(
            host=f"[{c.host}]" if ":" in c.host else c.host, port=c.port, http_scheme=scheme,
            client_session=trino.client.ClientSession(user=c.username, source="ingestion-connector"),
            http_session=self._session, request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
            auth=trino.auth.BasicAuthentication(c.username, self._password) if self._password else None,
        )  # fmt: skip
        return trino.client.TrinoQuery(request, sql)

    def _submit(self, query: Any) -> Any:
        """Submit `query` (in a worker thread) and wait for its first rows; close() cancels it from now on."""
        with self._lock:
            if self._closed:
                raise SourceError(f"{self._where()}: the source is closed")
            self._running = query
        try:
            return query.execute()
        except BaseException:
            with self._lock:
                if self._running is query:
                    self._running = None  # never got a nextUri to cancel: close() need not wait for one
            raise

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        """`function` in a worker thread, its failures as SourceError (never with the password)."""
        try:
            return await asyncio.to_thread(function, *args)
        except trino.exceptions.HttpError as error:
            if "401" in str(error).split(":", 1)[0]:
                raise SourceError(f"{self._where()}: authentication failed (HTTP 401); check the password") from None
            raise SourceError(f"{self._where()}: {error}") from None
        except (trino.exceptions.TrinoQueryError, trino.exceptions.TrinoExternalError) as error:
            raise SourceError(f"{self._where()}: query failed: {error.error_name}: {error.message}") from None
        except (trino.exceptions.TrinoConnectionError, requests.RequestException, OSError) as error:
            raise SourceError(f"Cannot reach {self._where()} (dialled {', '.join(self._addresses)}): {error}") from None

    async def _batches(self, sql: str) -> AsyncIterator[list[Row]]:
        """The rows of `sql` in batches of at most batch_size, fetched from the coordinator as they are consumed."""
        rows = iter(await self._call(self._submit, self._new_query(sql)))
        while batch := await self._call(_take, rows, self._batch_size):
            yield batch

    async def _rows(self, sql: str) -> list[Row]:
        return [row async for batch in self._batches(sql) for row in batch]

    async def _catalogs(self) -> list[Row]:
        catalogs = [row for row in await self._rows(CATALOGS_SQL) if row[0] != SYSTEM_CATALOG]
        wanted = self.config.catalog
        if wanted is None:
            return catalogs
        chosen = [row for row in catalogs if row[0] == wanted]
        if not chosen:
            names = ", ".join(row[0] for row in catalogs) or "none"
            raise SourceError(
                f"{self._where()}: catalog '{wanted}' does not exist or is not visible (catalogs: {names})"
            )
        return chosen

    async def test_connection(self) -> None:
        """Connect and list the catalogs (and the configured catalog's schemas), as a crawl would."""
        for name, _ in await self._catalogs():
            if self.config.catalog is not None:
                await self._rows(SCHEMAS_SQL.format(catalog=quote_identifier(name)))

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            query = self._running
        deadline = time.monotonic() + CANCEL_TIMEOUT_S
        # DELETE of the query's nextUri: the coordinator cancels it (USER_CANCELED). A query still being submitted
        # has no nextUri yet: try again until it has one, has finished or failed, or the deadline passes.
        while (query is not None and self._running is query and not (query.cancelled or query.finished)
               and time.monotonic() < deadline):  # fmt: skip
            try:
                await asyncio.wait_for(asyncio.to_thread(query.cancel), deadline - time.monotonic())
            except (TimeoutError, trino.exceptions.TrinoConnectionError, trino.exceptions.HttpError, OSError):
                break  # the coordinator abandons a query whose client stopped polling
            if not query.cancelled:
                await asyncio.sleep(0.05)
        if self._session is not None:
            self._session.close()
            self._session = None

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        catalogs = await self._catalogs()
        if not catalogs:
            self.report.warn(f"{self._where()}: no catalog but `system` is configured or visible to the user.")
        for name, connector in catalogs:
            try:
                async for batch in self._crawl_catalog(name, connector):
                    yield batch
            except SourceError as error:
                # Not skipped with a warning: a crawl without the catalog would report all of its assets deleted.
                hint = "" if self.config.catalog else " (set `catalog` to crawl another catalog alone)"
                raise SourceError(f"Reading catalog '{name}': {error}{hint}") from None

    async def _crawl_catalog(self, catalog: str, connector: str | None) -> AsyncIterator[list[AssetDict]]:
        quoted, literal = quote_identifier(catalog), quote_literal(catalog)
        container = container_asset(catalog, "catalog", connector=connector)
        schemas = [
            schema_asset(container["key"], name) for (name,) in await self._rows(SCHEMAS_SQL.format(catalog=quoted))
        ]
        schema_keys = {schema["name"]: schema["key"] for schema in schemas}
        assets = [container, *schemas]
        for start in range(0, len(assets), self._batch_size):
            yield assets[start : start + self._batch_size]

        views = {(s, t): d for s, t, d in await self._rows(VIEWS_SQL.format(catalog=quoted))}
        materialized = {(s, t): d for s, t, d in await self._rows(MATERIALIZED_VIEWS_SQL.format(name=literal))}
        comments = {(s, t): c for s, t, c in await self._rows(COMMENTS_SQL.format(name=literal))}
        table_keys: set[tuple[str, str]] = set()
        async for rows in self._batches(TABLES_SQL.format(catalog=quoted)):
            batch = []
            for schema, name, table_type in rows:
                if schema not in schema_keys:
                    continue  # its schema was created after the schemas were read: the next crawl has both
                table_keys.add((schema, name))
                if (schema, name) in materialized:
                    kind, definition = "materialized_view", materialized[(schema, name)]
                elif table_type == "VIEW":
                    kind, definition = "view", views.get((schema, name))
                else:
                    kind, definition = "table", None
                batch.append(table_asset(schema_keys[schema], schema, name, kind,
                                         comment=comments.get((schema, name)), definition=definition))  # fmt: skip
            if batch:
                yield batch

        async for rows in self._batches(COLUMNS_SQL.format(name=literal)):
            columns = [
                column_asset(f"{schema_keys[schema]}/{key_part(table)}", column, data_type, ordinal,
                             nullable=NULLABLE.get(is_nullable), comment=remarks, default=default)
                for schema, table, column, data_type, is_nullable, remarks, default, ordinal in rows
                if (schema, table) in table_keys  # else its table was created after the tables were read
            ]  # fmt: skip
            if columns:
                yield columns
