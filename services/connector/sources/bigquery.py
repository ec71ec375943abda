"""BigQuery source: the project, its datasets, tables, views, materialized views, external tables and their columns.

Set-based reads: the datasets by paged list calls and one `datasets.get` each (their descriptions); then, per location
and per up to DATASETS_PER_QUERY datasets, one query job each over INFORMATION_SCHEMA for tables (TABLES, VIEWS,
TABLE_OPTIONS), columns (COLUMNS), column descriptions (COLUMN_FIELD_PATHS) and keys (TABLE_CONSTRAINTS,
KEY_COLUMN_USAGE, CONSTRAINT_COLUMN_USAGE): never one call per table. A STRUCT column is one column asset whose
dataType spells its fields (`STRUCT<street STRING, city STRING>`); a REPEATED one is `ARRAY<...>`.

google-cloud-bigquery is synchronous: its calls run in worker threads. Every request goes through a session that
dials only the checked addresses of the one configured endpoint and refuses any other host undialled; a service
account signs its own tokens (self-signed JWT), so no token endpoint is called either.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import GoogleAPIError, NotFound
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import AuthorizedSession, Request
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

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
from services.core.sources.bigquery import BigQueryConfig, BigQueryCredentials, service_account_info

SCOPES = ("https://www.googleapis.com/auth/bigquery",)  # query jobs need more than bigquery.readonly
DATASETS_PER_QUERY = 50  # datasets of one location per INFORMATION_SCHEMA query (UNION ALL of dataset-level views)
REQUEST_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 600.0
CANCEL_TIMEOUT_S = 5.0
RETRY: Retry = DEFAULT_RETRY.with_timeout(120.0)
NO_RETRY = Retry(predicate=lambda _error: False)  # a test of the connection answers at once
KINDS = {"BASE TABLE": "table", "CLONE": "table", "SNAPSHOT": "table", "VIEW": "view",
         "MATERIALIZED VIEW": "materialized_view", "EXTERNAL": "external_table"}  # fmt: skip

TABLES_SQL = """SELECT t.table_schema, t.table_name, t.table_type, v.view_definition, o.option_value AS description
FROM {ds}.INFORMATION_SCHEMA.TABLES t
LEFT JOIN {ds}.INFORMATION_SCHEMA.VIEWS v ON v.table_name = t.table_name
LEFT JOIN {ds}.INFORMATION_SCHEMA.TABLE_OPTIONS o ON o.table_name = t.table_name AND o.option_name = 'description'"""
COLUMNS_SQL = """SELECT table_schema, table_name, column_name, ordinal_position, is_nullable, data_type,
       is_partitioning_column, clustering_ordinal_position
FROM {ds}.INFORMATION_SCHEMA.COLUMNS WHERE is_hidden = 'NO'"""  # not _PARTITIONTIME and other pseudo-columns
DESCRIPTIONS_SQL = """SELECT table_schema, table_name, column_name, description
FROM {ds}.INFORMATION_SCHEMA.COLUMN_FIELD_PATHS WHERE field_path = column_name AND description IS NOT NULL"""
KEYS_SQL = """SELECT k.table_schema, k.table_name, k.constraint_name, c.constraint_type, k.column_name,
       k.ordinal_position, u.table_schema AS ref_schema, u.table_name AS ref_table, u.column_name AS ref_column
FROM {ds}.INFORMATION_SCHEMA.KEY_COLUMN_USAGE k
JOIN {ds}.INFORMATION_SCHEMA.TABLE_CONSTRAINTS c
  ON c.table_name = k.table_name AND c.constraint_name = k.constraint_name
LEFT JOIN {ds}.INFORMATION_SCHEMA.CONSTRAINT_COLUMN_USAGE u
  ON c.constraint_type = 'FOREIGN KEY' AND u.constraint_name = k.constraint_name"""

T = TypeVar("T")
TableId = tuple[str, str]  # (dataset, table)


class CheckedAddressAdapter(HTTPAdapter):
    """Sends requests for the endpoint to its checked addresses (the next one if a connect fails), with the endpoint's
    name in the Host header, TLS SNI and certificate check; refuses any other host without dialling it."""

    def __init__(self, host: str, port: int, addresses: Sequence[str]) -> None:
        super().__init__()
        self._endpoint = (host, port)
        self._addresses = tuple(addresses)
        self._dialling = threading.local()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        port = url.port or (443 if url.scheme == "https" else 80)
        if (url.hostname, port) != self._endpoint:
            raise requests.ConnectionError(f"{url.hostname}:{port} is not the source's checked endpoint; not dialled")
        request.headers["Host"] = url.netloc
        kwargs["proxies"] = None  # a proxy would dial for us, unchecked
        for index, address in enumerate(self._addresses):
            self._dialling.address = address
            try:
                return super().send(request, *args, **kwargs)
            except requests.ConnectionError as error:
                if index + 1 == len(self._addresses) or not _connect_failed(error):
                    raise
        raise requests.ConnectionError("no checked address to dial")

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self._dialling.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = pool_kwargs["assert_hostname"] = self._endpoint[0]
        return host_params, pool_kwargs


def _connect_failed(error: requests.ConnectionError) -> bool:
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(error, requests.ConnectTimeout) or isinstance(reason, NewConnectionError | ConnectTimeoutError)


def checked_session(config: BigQueryConfig, credentials: Credentials, addresses: Sequence[str]) -> AuthorizedSession:
    """An authorized session that dials only `addresses` for the configured endpoint, and so do the credentials'
    own requests (google-auth's access-boundary lookups are refused, undialled: they are optional)."""
    adapter = CheckedAddressAdapter(config.host, config.port, addresses)
    credentials_session = requests.Session()
    token_requests = Request(session=credentials_session)
    authorized = AuthorizedSession(credentials, auth_request=token_requests)  # type: ignore[no-untyped-call]
    for session in (credentials_session, authorized):
        session.trust_env = False  # no proxies, no .netrc from the environment
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or True  # the trusted CAs, as requests reads them
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    return authorized


def google_credentials(config: BigQueryConfig, secrets: BigQueryCredentials) -> Credentials:
    if secrets.service_account_json is None:
        if config.endpoint is None:
            raise SourceError("BigQuery needs credentials.serviceAccountJson (anonymous access only to an emulator's "
                              "endpoint)")  # fmt: skip
        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    if urlsplit(config.base_url).scheme != "https":
        raise SourceError(f"Refusing to send service-account tokens to {config.base_url} over plain http")
    info = service_account_info(secrets.service_account_json)
    try:
        key = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=list(SCOPES)
        )
    except (ValueError, GoogleAuthError) as error:  # the key does not load; its text is never in the message
        raise SourceError(f"serviceAccountJson of {info['client_email']} is unusable: {type(error).__name__}") from None
    # Self-signed JWTs: no call to a token endpoint, so the checked endpoint is the only host dialled.
    jwt_key: Credentials = key.with_always_use_jwt_access(True)
    return jwt_key


class BigQuerySource:
    def __init__(
        self, config: BigQueryConfig, credentials: BigQueryCredentials, addresses: tuple[str, ...],
        batch_size: int = 1000,
    ) -> None:  # fmt: skip
        self.config = config
        self.report = SourceReport()
        self._secrets = credentials
        self._addresses = addresses
        self._batch_size = batch_size
        self._client: bigquery.Client | None = None
        self._running: tuple[str, str | None] | None = None  # the query job now running: (id, location)
        self._unsupported: set[str] = set()  # optional INFORMATION_SCHEMA reads this server refused

    @classmethod
    def create(
        cls, config: BigQueryConfig, credentials: BigQueryCredentials, addresses: CheckedAddresses
    ) -> BigQuerySource:
        return cls(config, credentials, addresses.of(config.host, config.port))

    def _connect(self) -> bigquery.Client:
        if self._client is None:
            credentials = google_credentials(self.config, self._secrets)
            self._client = bigquery.Client(
                project=self.config.project_id, credentials=credentials,
                client_options=ClientOptions(api_endpoint=self.config.base_url),
                _http=checked_session(self.config, credentials, self._addresses),
            )  # fmt: skip
        return self._client

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except (GoogleAPIError, GoogleAuthError, requests.RequestException, TimeoutError) as error:
            c = self.config
            dialled = "" if self._addresses == (c.host,) else f" ({', '.join(self._addresses)})"
            raise SourceError(f"BigQuery at {c.base_url}{dialled}, project '{c.project_id}': "
                              f"{type(error).__name__}: {error}"[:2000]) from None  # fmt: skip

    async def test_connection(self) -> None:
        """List the project's datasets and run a query job, as a crawl does (no retries: an answer, quickly)."""
        client = self._connect()
        await self._call(lambda: list(client.list_datasets(max_results=1, retry=NO_RETRY, timeout=REQUEST_TIMEOUT_S)))
        job = await self._call(client.query, "SELECT 1", job_retry=None, retry=NO_RETRY, timeout=REQUEST_TIMEOUT_S)
        await self._call(lambda: list(job.result(timeout=REQUEST_TIMEOUT_S, retry=NO_RETRY)))

    def lineage(self) -> list[LineageEdge]:
        return []  # views' lineage is not read yet

    async def close(self) -> None:
        """Cancel the query job now running (where the server can) and close the HTTP session, within seconds."""
        client, running = self._client, self._running
        self._client = self._running = None
        if client is None:
            return
        try:
            if running is not None:
                job_id, location = running
                await asyncio.wait_for(asyncio.to_thread(client.cancel_job, job_id, location=location, retry=NO_RETRY,
                                                         timeout=CANCEL_TIMEOUT_S), CANCEL_TIMEOUT_S + 1)  # fmt: skip
        except (GoogleAPIError, GoogleAuthError, requests.RequestException, TimeoutError) as error:
            self.report.warn(f"Could not cancel query job {running[0] if running else ''}: {type(error).__name__}")
        finally:
            client.close()  # type: ignore[no-untyped-call]

    async def _query(self, sql: str, location: str | None) -> AsyncIterator[list[Any]]:
        """The rows of a query job, a page at a time; the job is `_running` until its last page is read."""
        client = self._connect()
        job_id = f"catalog_crawl_{uuid.uuid4().hex}"
        self._running = (job_id, location)
        try:
            rows = await self._call(lambda: client.query(
                sql, job_id=job_id, location=location, job_retry=None, retry=RETRY, timeout=REQUEST_TIMEOUT_S,
            ).result(page_size=self._batch_size, timeout=QUERY_TIMEOUT_S, retry=RETRY))  # fmt: skip
            pages = iter(rows.pages)
            while (page := await self._call(next, pages, None)) is not None:
                yield list(page)
        except asyncio.CancelledError:
            raise  # still running: close() cancels it
        except BaseException:
            self._running = None  # failed (or left): nothing to cancel
            raise
        self._running = None

    async def _optional(self, what: str, view: str, sql: str, location: str | None) -> list[Any]:
        """Rows of a read the crawl can do without (a server may lack the view): a warning instead of a failure."""
        if view in self._unsupported:
            return []
        rows: list[Any] = []
        try:
            async for page in self._query(sql, location):
                rows.extend(page)
        except SourceError as error:
            self._unsupported.add(view)
            reason = str(error).split(": ", 1)[-1].splitlines()[0][:300]  # the error, without endpoint and project
            self.report.warn(f"{what} not read: INFORMATION_SCHEMA.{view} could not be queried ({reason})")
        return rows

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        client, project = self._connect(), self.config.project_id
        listed = await self._call(lambda: list(client.list_datasets(page_size=self._batch_size, retry=RETRY,
                                                                    timeout=REQUEST_TIMEOUT_S)))  # fmt: skip
        root = container_asset(project, "project")
        batch: list[AssetDict] = [root]
        by_location: dict[str | None, list[str]] = {}
        for item in listed:
            dataset = await self._call(_dataset, client, item.reference)
            if dataset is None:
                continue  # deleted since it was listed
            by_location.setdefault(dataset.location, []).append(item.dataset_id)
            batch.append(schema_asset(root["key"], item.dataset_id, dataset.description, location=dataset.location))
            if len(batch) >= self._batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        chunks = [(location, names[i : i + DATASETS_PER_QUERY]) for location, names in by_location.items()
                  for i in range(0, len(names), DATASETS_PER_QUERY)]  # fmt: skip
        key_rows: list[Any] = []
        for location, names in chunks:
            key_rows += await self._optional("Primary and foreign keys", "KEY_COLUMN_USAGE",
                                             self._sql(KEYS_SQL, names), location)  # fmt: skip
        primary, foreign = keys_by_table(key_rows)
        for location, names in chunks:
            async for assets in self._crawl_datasets(root["key"], location, names, primary, foreign):
                yield assets

    def _sql(self, template: str, datasets: Iterable[str]) -> str:
        project = self.config.project_id
        return "\nUNION ALL\n".join(template.format(ds=f"`{project}`.`{name}`") for name in datasets)

    async def _crawl_datasets(
        self, root: str, location: str | None, datasets: list[str], primary: dict[TableId, list[str]],
        foreign: dict[TableId, list[dict[str, Any]]],
    ) -> AsyncIterator[list[AssetDict]]:  # fmt: skip
        descriptions = {(r["table_schema"], r["table_name"], r["column_name"]): r["description"]
                        for r in await self._optional("Column descriptions", "COLUMN_FIELD_PATHS",
                                                      self._sql(DESCRIPTIONS_SQL, datasets), location)}  # fmt: skip
        table_keys: dict[TableId, str] = {}
        async for rows in self._query(self._sql(TABLES_SQL, datasets), location):
            batch = []
            for r in rows:
                table: TableId = (r["table_schema"], r["table_name"])
                if table in table_keys:
                    continue
                asset = table_asset(
                    f"{root}/{key_part(table[0])}", table[0], table[1], KINDS.get(r["table_type"], "table"),
                    comment=option_text(r["description"]), primary_key=primary.get(table, []),
                    foreign_keys=foreign.get(table, []), definition=r["view_definition"], nativeType=r["table_type"],
                )  # fmt: skip
                table_keys[table] = asset["key"]
                batch.append(asset)
            if batch:
                yield batch
        async for rows in self._query(self._sql(COLUMNS_SQL, datasets), location):
            batch = []
            for r in rows:
                table = (r["table_schema"], r["table_name"])
                if table not in table_keys:
                    continue  # created after the tables were read: the next crawl has it
                name = r["column_name"]
                batch.append(column_asset(
                    table_keys[table], name, r["data_type"], r["ordinal_position"], nullable=r["is_nullable"] == "YES",
                    comment=descriptions.get((*table, name)), primary_key=name in primary.get(table, ()),
                    partitionKey=r["is_partitioning_column"] == "YES",
                    clusteringPosition=r["clustering_ordinal_position"],
                ))  # fmt: skip
            if batch:
                yield batch


def _dataset(client: bigquery.Client, reference: bigquery.DatasetReference) -> bigquery.Dataset | None:
    try:
        return client.get_dataset(reference, retry=RETRY, timeout=REQUEST_TIMEOUT_S)
    except NotFound:
        return None


def option_text(value: str | None) -> str | None:
    """A TABLE_OPTIONS value is a GoogleSQL literal (`"People who buy"`); its text."""
    if value is None:
        return None
    try:
        text = json.loads(value)
    except ValueError:
        return value
    return text if isinstance(text, str) else value


def keys_by_table(rows: Iterable[Any]) -> tuple[dict[TableId, list[str]], dict[TableId, list[dict[str, Any]]]]:
    """Primary keys and foreign keys per (dataset, table), from KEYS_SQL's rows (a key column per row; a foreign key
    column once per column it references, which CONSTRAINT_COLUMN_USAGE lists without their order)."""
    primary_columns: dict[TableId, dict[int, str]] = {}
    foreign_parts: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        owner: TableId = (r["table_schema"], r["table_name"])
        if r["constraint_type"] == "PRIMARY KEY":
            primary_columns.setdefault(owner, {})[r["ordinal_position"]] = r["column_name"]
        elif r["constraint_type"] == "FOREIGN KEY":
            part = foreign_parts.setdefault((*owner, r["constraint_name"]), {"columns": {}, "ref": None, "refs": []})
            part["columns"][r["ordinal_position"]] = r["column_name"]
            if r["ref_table"] is not None:
                part["ref"] = (r["ref_schema"], r["ref_table"])
                if r["ref_column"] not in part["refs"]:
                    part["refs"].append(r["ref_column"])
    primary = {table: [columns[i] for i in sorted(columns)] for table, columns in primary_columns.items()}
    foreign: dict[TableId, list[dict[str, Any]]] = {}
    for (schema, table, name), part in sorted(foreign_parts.items()):
        ref_schema, ref_table = part["ref"] or ("", "")
        referenced = primary.get((ref_schema, ref_table), [])
        # In the referenced key's order when that key was read (BigQuery's foreign keys reference primary keys).
        refs = referenced if sorted(referenced) == sorted(part["refs"]) else part["refs"]
        columns = [part["columns"][i] for i in sorted(part["columns"])]
        fk = foreign_key(name, columns, ref_schema or None, ref_table, refs)
        foreign.setdefault((schema, table), []).append(fk)
    return primary, foreign
