"""AWS Glue Data Catalog source: databases (as schemas), tables, views and columns with partition keys.

Read page by page: GetDatabases, then GetTables per database (tables arrive with their columns), so the number
of calls grows with databases and pages, never with tables. Batches are yielded as pages arrive. The client
(aiobotocore over aiohttp) resolves no name itself: its connector asks our resolver, which knows only the
endpoint's checked addresses, and every socket it opens is checked against them (redirects included).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import ipaddress
import json
import re
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult
from botocore.exceptions import BotoCoreError, ClientError

from services.connector.sources.base import (
    AssetDict,
    SourceError,
    SourceReport,
    column_asset,
    key_part,
    schema_asset,
    table_asset,
)
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.glue import GlueConfig, GlueCredentials

PAGE_SIZE = 100  # the API's maximum for GetDatabases and GetTables
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
TABLE_KINDS = {"EXTERNAL_TABLE": "external_table", "VIRTUAL_VIEW": "view"}  # others (MANAGED_TABLE, ...): table
# The table parameters reported: those that say how the data is stored. The rest of Glue's Parameters are left
# out: statistics (numRows, totalSize, recordCount, averageRecordSize), DDL times (transient_lastDdlTime),
# crawler bookkeeping and Iceberg's metadata_location change while the table does not, and a key we do not know
# is as likely volatile as not.
FORMAT_PARAMETERS = frozenset({
    "classification", "table_type", "compressionType", "delimiter", "typeOfData", "skip.header.line.count",
    "has_encrypted_data", "projection.enabled",
})  # fmt: skip
# Athena stores a view's SQL base64-encoded in a comment; the SQL a person wrote is its `originalSql`.
ENGINE_VIEW = re.compile(r"^/\* (?:Presto|Trino) View: ([A-Za-z0-9+/=\s]+) \*/$")
REFUSED_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch",
    "IncompleteSignature", "MissingAuthenticationToken", "ExpiredTokenException",
})  # fmt: skip


class CheckedAddressResolver(AbstractResolver):
    """Answers for the endpoint's host only, with the addresses the SSRF check passed: no DNS query is made."""

    def __init__(self, host: str, port: int, addresses: tuple[str, ...]) -> None:
        self._host, self._port, self._addresses = host.lower(), port, addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if (host.lower().rstrip("."), port) != (self._host, self._port):
            raise OSError(errno.EACCES, f"{host}:{port} is not the configured Glue endpoint; the source dials no other")
        return [
            ResolveResult(hostname=host, host=address, port=port, proto=0, flags=socket.AI_NUMERICHOST,
                          family=socket.AF_INET6 if ":" in address else socket.AF_INET)
            for address in self._addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None


def checked_socket_factory(addresses: Iterable[str]) -> SocketFactoryType:
    """Sockets only towards `addresses`: also an IP literal (the endpoint's, a redirect's) must have passed."""
    allowed = {ipaddress.ip_address(address.split("%", 1)[0]) for address in addresses}

    def make_socket(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]) not in allowed:
            raise OSError(errno.EACCES, f"{sockaddr[0]} did not pass the source's address check; not dialled")
        return socket.socket(family=family, type=type_, proto=proto)

    return make_socket


class GlueSource:
    def __init__(
        self, config: GlueConfig, credentials: GlueCredentials, addresses: tuple[str, ...], batch_size: int = 1000,
        page_size: int = PAGE_SIZE,
    ) -> None:  # fmt: skip
        self.config = config
        self.report = SourceReport()
        self._secret = credentials.secret_access_key
        self._addresses = addresses
        self._batch_size = batch_size
        self._page_size = page_size
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._closed = False  # close() was called while a call may still be waiting: say so, not a network error

    @classmethod
    def create(cls, config: GlueConfig, credentials: GlueCredentials, addresses: CheckedAddresses) -> GlueSource:
        _, host, port = config.endpoint
        return cls(config, credentials, addresses.of(host, port))

    @property
    def _where(self) -> str:
        _, host, port = self.config.endpoint
        dialled = "" if self._addresses == (host,) else f" ({', '.join(self._addresses)})"
        return f"the Glue Data Catalog at {host}:{port}{dialled} with access key '{self.config.access_key_id}'"

    async def _glue(self) -> Any:
        if self._client is None:
            self._closed = False
            _, host, port = self.config.endpoint
            options = AioConfig(
                connector_args={
                    "resolver": CheckedAddressResolver(host, port, self._addresses),
                    "socket_factory": checked_socket_factory(self._addresses),
                    "use_dns_cache": False,
                },
                proxies={},  # never through a proxy from the environment: it would be a host nobody checked
                connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                retries={"mode": "standard", "total_max_attempts": 3},
                user_agent_extra="ingestion-connector",
            )  # fmt: skip
            # The connector's own AWS_PROFILE is no business of a tenant's crawl (nor a reason for it to fail).
            session = AioSession(session_vars={"profile": (None, None, None, None)})
            client = session.create_client(
                "glue", region_name=self.config.region, endpoint_url=self.config.url,
                aws_access_key_id=self.config.access_key_id, aws_secret_access_key=self._secret, config=options,
            )  # fmt: skip
            self._client = await self._stack.enter_async_context(client)
        return self._client

    def _catalog(self) -> dict[str, str]:
        return {"CatalogId": self.config.catalog_id} if self.config.catalog_id else {}

    async def _pages(
        self, operation: str, items: str, missing: str | None = None, page_size: int | None = None, **params: Any
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The items of each page of a paged Glue operation, as the pages arrive; if the entity read is gone
        (EntityNotFoundException) and `missing` says what that means, a warning and no more pages."""
        token: str | None = None
        while True:
            try:
                call = getattr(await self._glue(), operation)
                page = await call(**params, **self._catalog(), MaxResults=page_size or self._page_size,
                                  **({"NextToken": token} if token else {}))  # fmt: skip
            except ClientError as error:
                if missing is None or error.response.get("Error", {}).get("Code") != "EntityNotFoundException":
                    raise self._error(operation, error) from None
                self.report.warn(missing)
                return
            except (BotoCoreError, OSError) as error:
                raise self._error(operation, error) from None
            yield page.get(items) or []
            token = page.get("NextToken")
            if not token:
                return

    def _error(self, operation: str, error: Exception) -> SourceError:
        if self._closed:
            return SourceError(f"Stopped: the connection to {self._where} was closed while a call was waiting.")
        action = "glue:" + "".join(part.title() for part in operation.split("_"))
        if not isinstance(error, ClientError):
            # botocore's connection errors keep what went wrong below them in `kwargs["error"]`.
            cause = getattr(error, "kwargs", {}).get("error")
            return SourceError(f"Cannot reach {self._where}: {type(error).__name__}: {error}"
                               + (f" ({cause})" if cause is not None else ""))  # fmt: skip
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(error.response.get("Error", {}).get("Message", ""))[:300]
        if code == "AccessDeniedException":
            return SourceError(f"Access denied by {self._where}: the key may not call {action} ({message}).")
        if code in REFUSED_CODES or status in (401, 403):
            return SourceError(
                f"AWS refused the credentials at {self._where} ({code or status}): check accessKeyId and "
                f"secretAccessKey, and that the key may call {action}."
            )
        return SourceError(f"{action} failed at {self._where}: {code}: {message}")

    async def test_connection(self) -> None:
        """One GetDatabases call of one item: the endpoint answers and accepts the key."""
        async with contextlib.aclosing(self._pages("get_databases", "DatabaseList", page_size=1)) as pages:
            await anext(pages)

    def lineage(self) -> list[LineageEdge]:
        return []  # Glue records no lineage between tables

    async def close(self) -> None:
        # Closes the HTTP session: an in-flight request (one not already cancelled with the crawl) fails at once.
        self._client, self._closed = None, True
        await self._stack.aclose()

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        batch: list[AssetDict] = []
        databases: list[str] = []
        async for page in self._pages("get_databases", "DatabaseList"):
            for database in page:
                databases.append(database["Name"])
                batch.append(database_asset(database))
            while len(batch) >= self._batch_size:
                yield batch[: self._batch_size]
                batch = batch[self._batch_size :]
        if not databases:
            self.report.warn(f"No database found in {self._where}.")
        for name in databases:
            gone = f"Database {name} was dropped while the catalog was read; its tables are skipped."
            async for page in self._pages("get_tables", "TableList", missing=gone, DatabaseName=name):
                for table in page:
                    batch.extend(self._table_assets(name, table))
                while len(batch) >= self._batch_size:
                    yield batch[: self._batch_size]
                    batch = batch[self._batch_size :]
        if batch:
            yield batch

    def _table_assets(self, database: str, table: dict[str, Any]) -> list[AssetDict]:
        name = table["Name"]
        storage = table.get("StorageDescriptor") or {}
        partition_keys = table.get("PartitionKeys") or []
        kind = TABLE_KINDS.get(table.get("TableType") or "", "table")
        parent = table_asset(
            key_part(database), database, name, kind, comment=table.get("Description"),
            definition=view_definition(table) if kind == "view" else None,
            tableType=table.get("TableType"), owner=table.get("Owner"), location=storage.get("Location") or None,
            inputFormat=storage.get("InputFormat"), outputFormat=storage.get("OutputFormat"),
            serde=(storage.get("SerdeInfo") or {}).get("SerializationLibrary"),
            serdeParameters=(storage.get("SerdeInfo") or {}).get("Parameters") or {},
            partitionKeys=[key["Name"] for key in partition_keys],
            parameters={k: v for k, v in sorted((table.get("Parameters") or {}).items()) if k in FORMAT_PARAMETERS},
            targetTable=_target(table.get("TargetTable"), "DatabaseName", "Name"),
        )  # fmt: skip
        assets = [parent]
        seen: set[str] = set()
        columns = [(c, False) for c in storage.get("Columns") or []] + [(c, True) for c in partition_keys]
        for ordinal, (column, partition_key) in enumerate(columns, start=1):
            if column["Name"] in seen:
                self.report.warn(f"Table {database}.{name}: column {column['Name']} is listed twice; kept once.")
                continue
            seen.add(column["Name"])
            assets.append(column_asset(
                parent["key"], column["Name"], column.get("Type") or "", ordinal, nullable=None,
                comment=column.get("Comment"), partitionKey=partition_key,
            ))  # fmt: skip
        return assets


def database_asset(database: dict[str, Any]) -> AssetDict:
    """A Glue database plays the schema's role: a schema asset at the root."""
    return schema_asset(
        None, database["Name"], database.get("Description"), location=database.get("LocationUri") or None,
        targetDatabase=_target(database.get("TargetDatabase"), "DatabaseName"),
    )  # fmt: skip


def _target(link: dict[str, Any] | None, *names: str) -> str | None:
    """What a resource link points to, as `catalogId/database[/table]`."""
    if not link:
        return None
    return "/".join(str(link[name]) for name in ("CatalogId", *names) if link.get(name))


def view_definition(table: dict[str, Any]) -> str | None:
    """The SQL of a view: as written (Athena's encoded form decoded), or its first dialect's (multi-dialect views)."""
    text = table.get("ViewOriginalText")
    if not text:
        representations = (table.get("ViewDefinition") or {}).get("Representations") or [{}]
        text = representations[0].get("ViewOriginalText") or representations[0].get("ViewExpandedText")
    if not text:
        return None
    encoded = ENGINE_VIEW.match(text.strip())
    if encoded is not None:
        try:
            original = json.loads(base64.b64decode(encoded.group(1))).get("originalSql")
        except (binascii.Error, ValueError, AttributeError):
            original = None
        if isinstance(original, str):
            return original
    return str(text)
