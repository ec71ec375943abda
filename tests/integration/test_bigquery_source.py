"""The BigQuery plug-in against its emulator (infra/engines/bqemulator.sh): what the contract does not cover.

Nested and partitioned columns, materialized views, a fixed number of requests whatever the number of tables,
statistics kept out of fingerprints, dialling (checked addresses only, never the name, nothing else), cancellation,
and the configuration and key validation the API answers 422 with.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.transport.requests import Request
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField

from services.connector.sources.base import SourceError
from services.connector.sources.bigquery import (
    BigQuerySource,
    CheckedAddressAdapter,
    checked_session,
    google_credentials,
    keys_by_table,
    option_text,
)
from services.core.errors import InvalidInput
from services.core.sources import CheckedAddresses
from services.core.sources.bigquery import BIGQUERY, BigQueryConfig, BigQueryCredentials
from tests.integration.test_postgres_tls import server_context, test_ca  # noqa: F401 (a fixture)
from tests.sources.contract import listening
from tests.sources.platforms.bigquery import (
    add_column,
    create_dataset,
    create_table,
    emulator_client,
    emulator_endpoint,
    reset_project,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

PROJECT = "platform-bq"
# About 10 s of DuckDB work in the emulator.
SLOW_SQL = "SELECT SUM(MOD(a * b, 7)) FROM UNNEST(GENERATE_ARRAY(1, 25000)) a, UNNEST(GENERATE_ARRAY(1, 25000)) b"


@pytest.fixture
def emulator() -> None:
    reason = listening("BQEMULATOR_PORT", 19050)[1]
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI starts every engine
        pytest.skip(reason)


needs_emulator = pytest.mark.usefixtures("emulator")


def source_for(project: str = PROJECT, endpoint: str | None = None, addresses: tuple[str, ...] = ("127.0.0.1",),
               key: str | None = None) -> BigQuerySource:  # fmt: skip
    """The plug-in for `project`, configured with `endpoint` (default: the emulator's) but dialling `addresses`."""
    config = BigQueryConfig.model_validate({"projectId": project, "endpoint": endpoint or emulator_endpoint()})
    credentials = BigQueryCredentials.model_validate({"serviceAccountJson": key} if key else {})
    return BigQuerySource.create(config, credentials, CheckedAddresses({(config.host, config.port): addresses}))


async def crawl_all(source: BigQuerySource) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        async for batch in source.crawl():
            assets.update((asset["key"], asset) for asset in batch)
    finally:
        await source.close()
    return assets


def events_project(tables: int = 1) -> None:
    """Dataset `d` of PROJECT: a partitioned, clustered table with nested columns, a materialized view over it, and
    `tables - 1` more plain tables."""
    client = emulator_client(PROJECT)
    reset_project(client)
    create_dataset(client, "d", "Events")
    events = bigquery.Table(f"{PROJECT}.d.events", schema=[
        SchemaField("day", "DATE"), SchemaField("kind", "STRING"),
        SchemaField("payload", "RECORD", "REPEATED", fields=[SchemaField("k", "STRING"), SchemaField("v", "JSON")]),
        SchemaField("address", "RECORD", fields=[SchemaField("street", "STRING"), SchemaField("city", "STRING")]),
    ])  # fmt: skip
    events.time_partitioning = bigquery.TimePartitioning(field="day")
    events.clustering_fields = ["kind"]
    client.create_table(events)
    client.query(f"CREATE MATERIALIZED VIEW `{PROJECT}.d.per_kind` AS "
                 f"SELECT kind, COUNT(*) AS n FROM `{PROJECT}.d.events` GROUP BY kind").result()  # fmt: skip
    for index in range(1, tables):
        create_table(client, f"d.t{index}", [SchemaField("id", "INT64")])


@needs_emulator
async def test_nested_partitioned_and_clustered_columns_and_materialized_views() -> None:
    await asyncio.to_thread(events_project)
    assets = await crawl_all(source_for())
    columns = {a["name"]: a["attributes"] for a in assets.values() if a["parent_key"] == f"{PROJECT}/d/events"}
    assert columns["payload"]["dataType"] == "ARRAY<STRUCT<k STRING, v JSON>>"
    assert columns["payload"]["normalizedType"] == "array"
    # A STRUCT is one column; its fields are in its type, not assets of their own.
    assert columns["address"]["dataType"] == "STRUCT<street STRING, city STRING>"
    assert columns["address"]["normalizedType"] == "struct" and f"{PROJECT}/d/events/address/street" not in assets
    assert (columns["day"]["partitionKey"], columns["kind"]["clusteringPosition"]) == (True, 1)
    assert (columns["kind"]["partitionKey"], columns["day"]["clusteringPosition"]) == (False, None)
    view = assets[f"{PROJECT}/d/per_kind"]
    assert (view["kind"], view["attributes"]["nativeType"]) == ("materialized_view", "MATERIALIZED VIEW")
    assert assets[f"{PROJECT}/d"]["attributes"] == {"comment": "Events", "location": "US"}


@needs_emulator
async def test_the_emulator_lacks_keys_and_column_descriptions_and_the_crawl_says_so() -> None:
    await asyncio.to_thread(events_project)
    source = source_for()
    assets = await crawl_all(source)
    assert len(assets) == 1 + 1 + 2 + 4 + 2
    assert [w.split(":")[0] for w in source.report.warnings] == ["Primary and foreign keys not read",
                                                                 "Column descriptions not read"]  # fmt: skip


@needs_emulator
async def test_the_number_of_requests_does_not_grow_with_the_number_of_tables(monkeypatch) -> None:
    sent: list[str] = []
    send = CheckedAddressAdapter.send

    def counting(self: CheckedAddressAdapter, request: requests.PreparedRequest, *args: Any, **kw: Any) -> Any:
        sent.append(f"{request.method} {request.path_url.split('?')[0]}")
        return send(self, request, *args, **kw)

    monkeypatch.setattr(CheckedAddressAdapter, "send", counting)
    counts = []
    for tables in (1, 25):
        await asyncio.to_thread(events_project, tables)
        sent.clear()
        assets = await crawl_all(source_for())
        assert sum(a["kind"] == "table" for a in assets.values()) == tables
        counts.append(len(sent))
    assert counts[0] == counts[1], sent
    assert not [r for r in sent if "/tables/" in r], "one call per table"


@needs_emulator
async def test_inserted_rows_change_no_fingerprint() -> None:
    await asyncio.to_thread(events_project)
    before = await crawl_all(source_for())
    client = emulator_client(PROJECT)
    await asyncio.to_thread(lambda: client.query(
        f"INSERT INTO `{PROJECT}.d.events` (day, kind) VALUES (DATE '2026-01-01', 'a'), (DATE '2026-01-02', 'b')"
    ).result())  # fmt: skip
    after = await crawl_all(source_for())
    assert {k: a["fingerprint"] for k, a in after.items()} == {k: a["fingerprint"] for k, a in before.items()}


@needs_emulator
async def test_an_added_column_is_one_new_asset_and_updates_none() -> None:
    await asyncio.to_thread(events_project)
    before = await crawl_all(source_for())
    await asyncio.to_thread(add_column, emulator_client(PROJECT), "d.events", SchemaField("note", "STRING"))
    after = await crawl_all(source_for())
    assert set(after) - set(before) == {f"{PROJECT}/d/events/note"}
    assert [k for k in before if before[k]["fingerprint"] != after[k]["fingerprint"]] == []


@needs_emulator
async def test_the_crawl_dials_the_checked_address_and_never_resolves_the_name() -> None:
    await asyncio.to_thread(events_project)
    # No resolver knows this name: the crawl works only if every request goes to the checked address.
    port = emulator_endpoint().rsplit(":", 1)[1]
    assets = await crawl_all(source_for(endpoint=f"http://bq.emulator.invalid:{port}"))
    assert f"{PROJECT}/d/events" in assets


@needs_emulator
async def test_the_next_checked_address_is_dialled_when_one_refuses() -> None:
    await asyncio.to_thread(events_project)
    # The emulator listens on 127.0.0.1 only: 127.0.0.2 refuses the connection.
    assets = await crawl_all(source_for(addresses=("127.0.0.2", "127.0.0.1")))
    assert f"{PROJECT}/d/events" in assets


def test_a_request_to_any_other_host_is_refused_without_dialling() -> None:
    config = BigQueryConfig.model_validate({"projectId": PROJECT, "endpoint": "http://bq.emulator.invalid:1"})
    session = checked_session(config, google_credentials(config, BigQueryCredentials()), ["127.0.0.1"])
    with pytest.raises(requests.ConnectionError, match="not the source's checked endpoint; not dialled"):
        session.get("http://127.0.0.1:1/bigquery/v2/projects", timeout=5)
    with pytest.raises(requests.ConnectionError, match="not dialled"):
        session.get("https://oauth2.googleapis.com/token", timeout=5)


def test_tls_speaks_to_and_checks_the_endpoint_name_on_the_checked_address(test_ca: Any) -> None:  # noqa: F811
    name, seen = "bq.tls.invalid", {}
    context = server_context(test_ca, name)
    context.sni_callback = lambda _socket, server_name, _context: seen.update(sni=server_name)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen["host"] = self.headers["Host"]
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def session_for(host: str) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides `verify`
        session.verify = str(test_ca[0] / "ca.pem")
        session.mount("https://", CheckedAddressAdapter(host, port, ["127.0.0.1"]))
        return session

    try:
        assert session_for(name).get(f"https://{name}:{port}/", timeout=5).status_code == 204
        assert seen == {"sni": name, "host": f"{name}:{port}"}
        with pytest.raises(requests.exceptions.SSLError):  # the certificate is checked against the name
            session_for("other.tls.invalid").get(f"https://other.tls.invalid:{port}/", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


async def test_a_refused_connection_names_the_endpoint_and_the_address_dialled() -> None:
    source = source_for(endpoint="http://bq.emulator.invalid:1")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"BigQuery at http://bq\.emulator\.invalid:1 \(127\.0\.0\.1\), project "
                                          r"'platform-bq': ConnectionError"):  # fmt: skip
        await source.test_connection()
    await source.close()
    assert time.monotonic() - started < 10, "a test of the connection answers without retrying for minutes"


@needs_emulator
async def test_close_cancels_the_running_job_and_returns_within_seconds() -> None:
    source = source_for()

    async def slow_query() -> None:
        async for _ in source._query(SLOW_SQL, None):
            pass

    async def job_running() -> tuple[str, str | None] | None:
        return source._running

    task = asyncio.create_task(slow_query())
    job_id, _ = await eventually(job_running, timeout=10)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    await source.close()
    assert time.monotonic() - started < 8
    # bqemulator runs a query inside its jobs.insert and keeps no job until it is done: it cannot cancel one.
    assert [w.split(":")[0] for w in source.report.warnings] == [f"Could not cancel query job {job_id}"]


# --- configuration and credentials: what the API validates (422) ---


def service_account_key(**overrides: Any) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return json.dumps({"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
                       "private_key": pem.decode(), "client_email": f"crawler@{PROJECT}.iam.gserviceaccount.com",
                       "token_uri": "https://oauth2.googleapis.com/token"} | overrides)  # fmt: skip


@pytest.mark.parametrize(("configuration", "field"), [
    ({"projectId": "Not A Project"}, "configuration.projectId"),
    ({"projectId": PROJECT, "endpoint": "ftp://bq.example.com"}, "configuration.endpoint"),
    ({"projectId": PROJECT, "endpoint": "https://bq.example.com/bigquery/v2"}, "configuration.endpoint"),
    ({"projectId": PROJECT, "endpoint": "https://user:pw@bq.example.com"}, "configuration.endpoint"),
    ({"projectId": PROJECT, "dataset": "x"}, "configuration.dataset"),
])  # fmt: skip
def test_bad_configurations_are_refused_naming_the_field(configuration: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        BIGQUERY.parse_config(configuration)
    assert refused.value.field == field


def test_the_endpoint_is_the_one_host_dialled_and_an_identity_field() -> None:
    default = BIGQUERY.parse_config({"projectId": PROJECT})
    assert [(e.host, e.port, e.field) for e in BIGQUERY.endpoints(default)] == [
        ("bigquery.googleapis.com", 443, "configuration.endpoint")]  # fmt: skip
    private = BIGQUERY.parse_config({"projectId": PROJECT, "endpoint": "https://bq.internal.example:8443/"})
    assert [(e.host, e.port) for e in BIGQUERY.endpoints(private)] == [("bq.internal.example", 8443)]
    assert private.endpoint == "https://bq.internal.example:8443"
    stored = {"projectId": PROJECT, "endpoint": "https://bq.internal.example:8443"}
    other = BIGQUERY.parse_config({"projectId": "other-project"})
    assert BIGQUERY.changed_identity(stored, other) == ["configuration.projectId", "configuration.endpoint"]
    written_out = BIGQUERY.parse_config({"projectId": PROJECT, "endpoint": "https://BigQuery.googleapis.com:443"})
    assert BIGQUERY.changed_identity({"projectId": PROJECT}, written_out) == []
    assert BIGQUERY.secret_fields == frozenset({"serviceAccountJson"})


@pytest.mark.parametrize(("key", "message"), [
    ("not json at all -----BEGIN PRIVATE KEY-----", "this is not JSON"),
    (json.dumps({"type": "authorized_user", "private_key": "-----BEGIN PRIVATE KEY-----"}), '"service_account"'),
    (json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----x"}), "lacks client_email"),
    (service_account_key(token_uri="http://169.254.169.254/token"), "token_uri must be https://oauth2.googleapis"),
    (service_account_key(universe_domain="evil.example"), "universe_domain must be googleapis.com"),
])  # fmt: skip
def test_bad_service_account_keys_are_refused_without_echoing_them(key: str, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        BIGQUERY.parse_credentials({"serviceAccountJson": key})
    assert refused.value.field == "credentials.serviceAccountJson"
    assert message in str(refused.value)
    assert "PRIVATE KEY" not in str(refused.value) and "169.254" not in str(refused.value)


async def test_a_key_is_never_sent_over_plain_http_and_anonymous_access_needs_an_endpoint() -> None:
    with pytest.raises(SourceError, match="over plain http"):
        await source_for(key=service_account_key()).test_connection()
    config = BIGQUERY.parse_config({"projectId": PROJECT})
    with pytest.raises(SourceError, match=r"needs credentials\.serviceAccountJson"):
        google_credentials(config, BigQueryCredentials())


def test_a_service_account_signs_its_own_tokens_and_calls_no_token_endpoint() -> None:
    config = BIGQUERY.parse_config({"projectId": PROJECT})
    credentials = google_credentials(config, BIGQUERY.parse_credentials({"serviceAccountJson": service_account_key()}))
    nowhere = requests.Session()
    nowhere.mount("https://", CheckedAddressAdapter("nowhere.invalid", 443, ["127.0.0.1"]))  # refuses every host
    credentials.refresh(Request(session=nowhere))
    header = json.loads(base64.urlsafe_b64decode(credentials.token.split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(credentials.token.split(".")[1] + "=="))
    assert header["alg"] == "RS256" and claims["iss"] == f"crawler@{PROJECT}.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/bigquery"


# --- pure mapping ---


def test_keys_are_read_in_key_order_and_foreign_keys_reference_the_primary_key_order() -> None:
    def row(table: str, name: str, kind: str, column: str, ordinal: int, ref: tuple[str, str, str] | None = None):
        ref_schema, ref_table, ref_column = ref or (None, None, None)
        return {"table_schema": "s", "table_name": table, "constraint_name": name, "constraint_type": kind,
                "column_name": column, "ordinal_position": ordinal, "ref_schema": ref_schema, "ref_table": ref_table,
                "ref_column": ref_column}  # fmt: skip

    rows = [
        row("lines", "lines.pk$", "PRIMARY KEY", "line", 2), row("lines", "lines.pk$", "PRIMARY KEY", "order_id", 1),
        row("orders", "orders.pk$", "PRIMARY KEY", "region", 2), row("orders", "orders.pk$", "PRIMARY KEY", "id", 1),
        # a two-column foreign key: each of its columns once per referenced column (CONSTRAINT_COLUMN_USAGE's rows)
        *(row("lines", "fk_order", "FOREIGN KEY", column, ordinal, ("s", "orders", ref))
          for column, ordinal in (("order_region", 2), ("order_id", 1)) for ref in ("region", "id")),
        row("lines", "fk_far", "FOREIGN KEY", "far_id", 1, ("other", "far", "id")),
    ]  # fmt: skip
    primary, foreign = keys_by_table(rows)
    assert primary == {("s", "lines"): ["order_id", "line"], ("s", "orders"): ["id", "region"]}
    assert foreign == {("s", "lines"): [
        {"name": "fk_far", "columns": ["far_id"], "references": {"schema": "other", "table": "far", "columns": ["id"]}},
        {"name": "fk_order", "columns": ["order_id", "order_region"],
         "references": {"schema": "s", "table": "orders", "columns": ["id", "region"]}},
    ]}  # fmt: skip


def test_table_options_are_googlesql_literals() -> None:
    assert option_text('"People who buy"') == "People who buy"
    assert option_text('"Say \\"hi\\"\\nthen go"') == 'Say "hi"\nthen go'
    assert option_text(None) is None and option_text('[STRUCT("a", "b")]') == '[STRUCT("a", "b")]'
