"""The Glue plug-in beyond the contract: configuration, what it reads from the emulator (moto), paging, dialling,
errors and cancellation.

moto ignores MaxResults and NextToken (it answers every list in one page), so paging and the number of calls
per crawl are checked against a small Glue JSON API of our own on loopback, which pages as AWS does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from services.connector.sources.base import SourceError
from services.connector.sources.glue import GlueSource
from services.core.errors import InvalidInput
from services.core.sources import CheckedAddresses, SystemResolver, check_endpoints
from services.core.sources.glue import GLUE, GlueConfig
from tests.integration.test_postgres_tls import server_context, test_ca  # noqa: F401 (a fixture)
from tests.sources.contract import listening
from tests.sources.platforms.glue import drop_databases, glue_client, moto_endpoint, moto_key, moto_user_key

pytestmark = pytest.mark.integration

REGION = "us-west-2"  # these tests' own region of the emulator (the contract uses another)
KEY_ID = "AKIAEXAMPLEEXAMPLE00"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def config(**overrides: Any) -> dict[str, Any]:
    return {"region": "eu-west-1", "accessKeyId": KEY_ID} | overrides


def source_at(endpoint: str, addresses: tuple[str, ...] = ("127.0.0.1",), key: tuple[str, str] = (KEY_ID, SECRET),
              region: str = REGION, **options: Any) -> GlueSource:  # fmt: skip
    """The plug-in for `endpoint`, dialling `addresses` (what the SSRF check would have passed)."""
    parsed = GlueConfig.model_validate({"region": region, "endpointUrl": endpoint, "accessKeyId": key[0]})
    _, host, port = parsed.endpoint
    checked = CheckedAddresses({(host, port): addresses})
    return GlueSource(parsed, GLUE.parse_credentials({"secretAccessKey": key[1]}), checked.of(host, port), **options)


async def crawl_all(source: GlueSource) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        async for batch in source.crawl():
            for asset in batch:
                assert asset["key"] not in assets
                assets[asset["key"]] = asset
    finally:
        await source.close()
    return assets


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["US-EAST-1", "us-east", "mars-1", "us-east-1; rm", ""])
def test_a_region_that_is_not_an_aws_region_code_is_refused(region: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        GLUE.parse_config(config(region=region))
    assert refused.value.field == "configuration.region"


@pytest.mark.parametrize("url", [
    "http://glue.example.com", "http://10.0.0.5:4566", "ftp://glue.example.com", "https://user:pw@glue.example.com",
    "https://glue.example.com/glue", "https://glue.example.com?x=1", "https://169.254.169.254", "glue.example.com",
    "https://glue.example.com:0",
])  # fmt: skip
def test_an_endpoint_url_must_be_https_without_path_or_userinfo_and_never_link_local(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        GLUE.parse_config(config(endpointUrl=url))
    assert refused.value.field == "configuration.endpointUrl"


@pytest.mark.parametrize(("url", "endpoint", "client_url"), [
    ("https://vpce-1.glue.eu-west-1.vpce.amazonaws.com", ("vpce-1.glue.eu-west-1.vpce.amazonaws.com", 443),
     "https://vpce-1.glue.eu-west-1.vpce.amazonaws.com:443"),
    ("https://glue.internal:8443/", ("glue.internal", 8443), "https://glue.internal:8443"),
    ("http://127.0.0.1:15000", ("127.0.0.1", 15000), "http://127.0.0.1:15000"),
    ("http://localhost", ("localhost", 80), "http://localhost:80"),
    ("http://[::1]:4566", ("::1", 4566), "http://[::1]:4566"),
])  # fmt: skip
def test_the_endpoint_dialled_is_the_endpoint_url_host_and_port(url: str, endpoint: tuple[str, int],
                                                                client_url: str) -> None:  # fmt: skip
    parsed = GLUE.parse_config(config(endpointUrl=url))
    assert [(e.host, e.port, e.field) for e in GLUE.endpoints(parsed)] == [(*endpoint, "configuration.endpointUrl")]
    assert parsed.url == client_url


@pytest.mark.parametrize(("region", "host"), [
    ("eu-west-1", "glue.eu-west-1.amazonaws.com"), ("us-gov-west-1", "glue.us-gov-west-1.amazonaws.com"),
    ("cn-north-1", "glue.cn-north-1.amazonaws.com.cn"),
])  # fmt: skip
def test_without_an_endpoint_url_the_region_names_the_endpoint(region: str, host: str) -> None:
    parsed = GLUE.parse_config(config(region=region))
    assert [(e.host, e.port, e.field) for e in GLUE.endpoints(parsed)] == [(host, 443, "configuration.region")]
    assert parsed.url == f"https://{host}:443"


def test_access_key_id_and_catalog_id_are_validated_and_the_secret_is_the_one_secret_field() -> None:
    for bad in ({"accessKeyId": "akia-lower-case"}, {"accessKeyId": "AKIA"}, {"catalogId": "12345"},
                {"catalogId": "123456789012/x"}):  # fmt: skip
        with pytest.raises(InvalidInput):
            GLUE.parse_config(config(**bad))
    assert GLUE.parse_config(config(catalogId="123456789012")).catalog_id == "123456789012"
    assert GLUE.parse_config(config(catalogId="123456789012:s3tablescatalog/lake")).catalog_id
    assert GLUE.secret_fields == {"secretAccessKey"}
    assert GLUE.parse_credentials({"secretAccessKey": SECRET}).secret_access_key == SECRET
    with pytest.raises(InvalidInput):
        GLUE.parse_credentials({"secretAccessKey": ""})


@pytest.mark.parametrize(("change", "field"), [
    ({"region": "eu-west-2"}, "region"), ({"endpointUrl": "https://glue.example.com"}, "endpointUrl"),
    ({"catalogId": "210987654321"}, "catalogId"), ({"accessKeyId": "AKIAOTHEROTHEROTHER0"}, "accessKeyId"),
])  # fmt: skip
def test_changing_where_or_as_whom_the_key_is_sent_is_an_identity_change(change: dict[str, str], field: str) -> None:
    before = config(catalogId="123456789012")
    assert GLUE.changed_identity(before, GLUE.parse_config(before | change)) == [f"configuration.{field}"]


async def test_plain_http_reaches_only_loopback_which_only_installations_allowing_private_sources_dial() -> None:
    parsed = GLUE.parse_config(config(endpointUrl="http://127.0.0.1:15000"))
    with pytest.raises(InvalidInput, match="non-public address"):
        await check_endpoints(GLUE.endpoints(parsed), allow_private=False, resolver=SystemResolver())
    assert await check_endpoints(GLUE.endpoints(parsed), allow_private=True, resolver=SystemResolver())


def test_a_plugin_is_only_built_for_a_checked_endpoint() -> None:
    parsed = GLUE.parse_config(config())
    with pytest.raises(LookupError, match=r"glue\.eu-west-1\.amazonaws\.com:443 was not checked"):
        GlueSource.create(parsed, GLUE.parse_credentials({"secretAccessKey": SECRET}), CheckedAddresses({}))


# --- against the emulator -------------------------------------------------------------------------------------------


@pytest.fixture
async def moto() -> AsyncIterator[Any]:
    """The emulator's Glue client in this module's region, emptied first."""
    reason = listening("MOTO_PORT", 15000)[1]
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    async with glue_client(REGION) as glue:
        await drop_databases(glue)
        yield glue


def moto_source(key: tuple[str, str] | None = None, **options: Any) -> GlueSource:
    return source_at(moto_endpoint(), key=key or moto_key(), **options)


def athena_view(sql: str) -> str:
    """How Athena stores a view's SQL in ViewOriginalText."""
    encoded = base64.b64encode(json.dumps({"originalSql": sql, "catalog": "awsdatacatalog", "columns": []}).encode())
    return f"/* Presto View: {encoded.decode()} */"


LAKE = {"Location": "s3://lake/events/", "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"}}  # fmt: skip


async def test_partition_keys_are_columns_after_the_regular_ones_marked_as_partition_keys(moto: Any) -> None:
    await moto.create_database(DatabaseInput={"Name": "lake", "LocationUri": "s3://lake/"})
    await moto.create_table(DatabaseName="lake", TableInput={
        "Name": "events", "TableType": "EXTERNAL_TABLE", "Description": "Clicks",
        "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "bigint"},
                                          {"Name": "payload", "Type": "struct<kind:string,tags:array<string>>"}],
                              **LAKE},
        "PartitionKeys": [{"Name": "dt", "Type": "date", "Comment": "Day of the click"},
                          {"Name": "region", "Type": "string"}],
    })  # fmt: skip
    assets = await crawl_all(moto_source())
    assert assets["lake"]["attributes"]["location"] == "s3://lake/"
    events = assets["lake/events"]["attributes"]
    assert events["partitionKeys"] == ["dt", "region"]
    assert (events["location"], events["serde"]) == ("s3://lake/events/", "org.openx.data.jsonserde.JsonSerDe")
    columns = {k.rsplit("/", 1)[1]: a["attributes"] for k, a in assets.items() if a["kind"] == "column"}
    positions = {name: (c["ordinal"], c["partitionKey"]) for name, c in columns.items()}
    assert positions == {"id": (1, False), "payload": (2, False), "dt": (3, True), "region": (4, True)}
    assert (columns["payload"]["normalizedType"], columns["dt"]["normalizedType"]) == ("struct", "date")
    assert columns["dt"]["comment"] == "Day of the click"


async def test_views_read_as_written_and_table_types_map_to_kinds(moto: Any) -> None:
    await moto.create_database(DatabaseInput={"Name": "bi"})
    columns = {"Columns": [{"Name": "x", "Type": "int"}]}
    await moto.create_table(DatabaseName="bi", TableInput={
        "Name": "athena_view", "TableType": "VIRTUAL_VIEW", "ViewOriginalText": athena_view("SELECT 1 AS x"),
        "ViewExpandedText": "/* Presto View */", "StorageDescriptor": columns})  # fmt: skip
    await moto.create_table(DatabaseName="bi", TableInput={"Name": "plain", "StorageDescriptor": columns})
    await moto.create_table(DatabaseName="bi", TableInput={"Name": "governed", "TableType": "GOVERNED"})
    assets = await crawl_all(moto_source())
    assert assets["bi/athena_view"]["kind"] == "view"
    assert assets["bi/athena_view"]["attributes"]["definition"] == "SELECT 1 AS x"
    assert (assets["bi/plain"]["kind"], assets["bi/governed"]["kind"]) == ("table", "table")
    assert assets["bi/governed"]["attributes"]["tableType"] == "GOVERNED"


async def test_statistics_and_versions_never_change_a_fingerprint_but_the_format_does(moto: Any) -> None:
    def table(parameters: dict[str, str]) -> dict[str, Any]:
        return {"Name": "t", "TableType": "EXTERNAL_TABLE", "Parameters": parameters,
                "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "int"}], **LAKE}}  # fmt: skip

    await moto.create_database(DatabaseInput={"Name": "stats"})
    await moto.create_table(DatabaseName="stats", TableInput=table({"classification": "json", "numRows": "1"}))
    before = await crawl_all(moto_source())
    # A new version of the table (moto bumps VersionId and UpdateTime) with new statistics only.
    await moto.update_table(DatabaseName="stats", TableInput=table({
        "classification": "json", "numRows": "5000", "totalSize": "1048576", "transient_lastDdlTime": "1700000999",
        "recordCount": "5000", "averageRecordSize": "40", "UPDATED_BY_CRAWLER": "nightly",
    }))  # fmt: skip
    after = await crawl_all(moto_source())
    assert {k: a["fingerprint"] for k, a in after.items()} == {k: a["fingerprint"] for k, a in before.items()}
    assert after["stats/t"]["attributes"]["parameters"] == {"classification": "json"}
    await moto.update_table(DatabaseName="stats", TableInput=table({"classification": "csv"}))
    changed = await crawl_all(moto_source())
    assert changed["stats/t"]["fingerprint"] != before["stats/t"]["fingerprint"]
    assert changed["stats/t/id"]["fingerprint"] == before["stats/t/id"]["fingerprint"]


async def test_test_connection_accepts_the_key_and_an_empty_catalog_is_a_warning(moto: Any) -> None:
    source = moto_source()
    try:
        await source.test_connection()
    finally:
        await source.close()
    assert await crawl_all(source) == {}
    assert source.report.warnings == [
        f"No database found in the Glue Data Catalog at 127.0.0.1:{listening('MOTO_PORT', 15000)[0]} with access "
        f"key '{moto_key()[0]}'."
    ]


async def test_an_unknown_access_key_is_refused_naming_the_key_but_not_the_secret(moto: Any) -> None:
    source = moto_source(key=("AKIANOSUCHKEYNOSUCH0", SECRET))
    with pytest.raises(SourceError, match="AWS refused the credentials") as refused:
        await crawl_all(source)
    assert "AKIANOSUCHKEYNOSUCH0" in str(refused.value) and SECRET not in str(refused.value)


async def test_a_key_without_glue_get_tables_fails_naming_the_action(moto: Any) -> None:
    await moto.create_database(DatabaseInput={"Name": "locked"})
    key = moto_user_key(f"ingestion-glue-list-only-{os.getpid()}", ["glue:GetDatabases"])
    source = moto_source(key=key)
    await source.test_connection()  # listing databases is allowed
    with pytest.raises(SourceError, match="glue:GetTables") as refused:
        await crawl_all(source)
    assert key[1] not in str(refused.value)


async def test_the_crawl_dials_the_checked_address_and_never_resolves_the_name(moto: Any) -> None:
    await moto.create_database(DatabaseInput={"Name": "dialled"})
    _, secret = moto_key()
    port = listening("MOTO_PORT", 15000)[0]
    # No resolver knows this name (and http:// to it would not validate): built as the checked config would be.
    parsed = GlueConfig.model_construct(region=REGION, endpoint_url=f"http://glue.moto.invalid:{port}",
                                        catalog_id=None, access_key_id=moto_key()[0])  # fmt: skip
    source = GlueSource(parsed, GLUE.parse_credentials({"secretAccessKey": secret}), ("127.0.0.1",))
    assert list(await crawl_all(source)) == ["dialled"]


async def test_a_checked_address_that_refuses_is_named_and_the_name_is_not_tried_instead(moto: Any) -> None:
    port = listening("MOTO_PORT", 15000)[0]
    # localhost is where moto listens, but the check passed 127.0.0.2 only: that is all the client may dial.
    source = source_at(f"http://localhost:{port}", ("127.0.0.2",), key=moto_key())
    with pytest.raises(SourceError, match=rf"Cannot reach the Glue Data Catalog at localhost:{port} \(127\.0\.0\.2\)"):
        await source.test_connection()
    await source.close()


async def test_nothing_listening_is_reported_with_host_and_port() -> None:
    source = source_at("http://127.0.0.1:1")
    with pytest.raises(SourceError, match=r"Cannot reach the Glue Data Catalog at 127\.0\.0\.1:1 ") as refused:
        await source.test_connection()
    await source.close()
    assert SECRET not in str(refused.value)


# --- paging, calls and progress, against a paging Glue API of our own ----------------------------------------------


@asynccontextmanager
async def serving(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                  host: str = "127.0.0.1") -> AsyncIterator[int]:  # fmt: skip
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


class PagingGlue:
    """GetDatabases and GetTables as AWS answers them: MaxResults items a page, then a NextToken."""

    def __init__(self, tables: dict[str, int], gone: frozenset[str] = frozenset()) -> None:
        self.tables = tables  # database -> number of tables (each with 20 columns)
        self.gone = gone  # databases listed but dropped before their tables are read
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        operation = request.headers["X-Amz-Target"].split(".")[-1]
        body = await request.json()
        self.calls.append((operation, body))
        if operation == "GetDatabases":
            items: list[dict[str, Any]] = [{"Name": name} for name in self.tables]
            key = "DatabaseList"
        elif body["DatabaseName"] in self.gone:
            return json_response({"__type": "EntityNotFoundException", "Message": "Database not found."}, 400)
        else:
            key = "TableList"
            columns = [{"Name": f"c{c}", "Type": "string"} for c in range(20)]
            items = [{"Name": f"t{i}", "StorageDescriptor": {"Columns": columns}}
                     for i in range(self.tables[body["DatabaseName"]])]  # fmt: skip
        start, size = int(body.get("NextToken") or 0), body["MaxResults"]
        page: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            page["NextToken"] = str(start + size)
        return json_response(page)


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/x-amz-json-1.1")


async def test_a_crawl_makes_paged_calls_per_database_never_per_table_and_yields_as_pages_arrive() -> None:
    glue = PagingGlue({"a": 5, "b": 5, "c": 1})
    async with serving(glue.handle) as port:
        source = source_at(f"http://127.0.0.1:{port}", batch_size=50, page_size=2)
        calls_at_batch: list[int] = []
        sizes: list[int] = []
        try:
            async for batch in source.crawl():
                calls_at_batch.append(len(glue.calls))
                sizes.append(len(batch))
        finally:
            await source.close()
    operations = [operation for operation, _ in glue.calls]
    # 3 databases in pages of 2: 2 calls; then 3 + 3 + 1 pages of tables. 11 tables of 20 columns each: 234 assets.
    assert operations == ["GetDatabases"] * 2 + ["GetTables"] * 7
    assert [body["DatabaseName"] for _, body in glue.calls[2:]] == ["a"] * 3 + ["b"] * 3 + ["c"]
    assert sum(sizes) == 3 + 11 * 21 and max(sizes) <= 50
    assert calls_at_batch[0] < len(glue.calls)  # the first assets arrived before the last page was asked for


async def test_test_connection_asks_for_one_database_of_the_configured_catalog() -> None:
    glue = PagingGlue({"a": 0, "b": 0})
    async with serving(glue.handle) as port:
        parsed = GlueConfig.model_validate({"region": REGION, "endpointUrl": f"http://127.0.0.1:{port}",
                                            "catalogId": "210987654321", "accessKeyId": KEY_ID})  # fmt: skip
        source = GlueSource(parsed, GLUE.parse_credentials({"secretAccessKey": SECRET}), ("127.0.0.1",))
        try:
            await source.test_connection()
            await crawl_all(source)
        finally:
            await source.close()
    assert glue.calls[0] == ("GetDatabases", {"CatalogId": "210987654321", "MaxResults": 1})
    assert all(body["CatalogId"] == "210987654321" for _, body in glue.calls)


async def test_a_database_dropped_during_the_crawl_is_a_warning_and_the_rest_is_read() -> None:
    glue = PagingGlue({"a": 1, "gone": 1, "c": 1}, gone=frozenset({"gone"}))
    async with serving(glue.handle) as port:
        source = source_at(f"http://127.0.0.1:{port}")
        assets = await crawl_all(source)
    assert {"a/t0", "c/t0", "gone"} <= set(assets) and "gone/t0" not in assets
    assert source.report.warnings == ["Database gone was dropped while the catalog was read; its tables are skipped."]


@pytest.mark.parametrize(("bind", "target", "refusal"), [
    ("127.0.0.2", "127.0.0.2", "127.0.0.2 did not pass the source's address check"),  # an IP literal: not resolved
    ("127.0.0.1", "localhost", "is not the configured Glue endpoint"),  # a name: our resolver knows only one
])  # fmt: skip
async def test_a_redirect_elsewhere_is_not_followed(bind: str, target: str, refusal: str) -> None:
    reached: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        reached.append(request.path)
        return json_response({"DatabaseList": []})

    async with serving(elsewhere, host=bind) as other_port:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(f"http://{target}:{other_port}/")

        async with serving(redirect) as port:
            source = source_at(f"http://127.0.0.1:{port}")
            try:
                with pytest.raises(SourceError, match=refusal):
                    await source.test_connection()
            finally:
                await source.close()
    assert reached == []


@pytest.mark.parametrize(("certified", "works"), [("glue.example.test", True), ("other.example.test", False)])
async def test_tls_checks_the_certificate_against_the_configured_host_while_dialling_the_checked_address(
    test_ca: Any,  # noqa: F811 (the fixture, imported)
    monkeypatch: pytest.MonkeyPatch,
    certified: str,
    works: bool,
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(test_ca[0] / "ca.pem"))
    glue = PagingGlue({"a": 1})
    app = web.Application()
    app.router.add_post("/", glue.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(test_ca, certified))
    await site.start()
    try:
        source = source_at(f"https://glue.example.test:{runner.addresses[0][1]}")  # dials 127.0.0.1
        if works:
            assert set(await crawl_all(source)) == {"a", "a/t0", *(f"a/t0/c{c}" for c in range(20))}
        else:
            with pytest.raises(SourceError, match=r"glue\.example\.test.*certificate verify failed"):
                await crawl_all(source)
            assert glue.calls == []
    finally:
        await runner.cleanup()


# --- cancellation ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event, asyncio.Event]]:
    """A TCP server that accepts and never answers: (port, a connection arrived, that connection was closed)."""
    accepted, closed = asyncio.Event(), asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        while await reader.read(65536):  # the request, then nothing until the client hangs up
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted, closed
    finally:
        server.close()


async def test_a_cancelled_crawl_stops_within_seconds_and_hangs_up_on_the_source() -> None:
    async with silent_server() as (port, accepted, closed):
        source = source_at(f"http://127.0.0.1:{port}")

        async def crawl() -> None:
            async for _ in source.crawl():
                pass

        task = asyncio.create_task(crawl())
        await asyncio.wait_for(accepted.wait(), 10)  # the crawl is waiting on the source's answer
        started = asyncio.get_running_loop().time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        await asyncio.wait_for(source.close(), 5)
        await asyncio.wait_for(closed.wait(), 5)
        assert asyncio.get_running_loop().time() - started < 5


async def test_close_alone_ends_a_crawl_waiting_on_the_source() -> None:
    async with silent_server() as (port, accepted, closed):
        source = source_at(f"http://127.0.0.1:{port}")
        task = asyncio.create_task(source.test_connection())
        await asyncio.wait_for(accepted.wait(), 10)
        await asyncio.wait_for(source.close(), 5)
        # The call fails once botocore's retry backoff (at most ~3 s in all) finds the session closed.
        with pytest.raises(SourceError, match=f"Stopped: the connection to .* at 127.0.0.1:{port} .* was closed"):
            await asyncio.wait_for(task, 10)
        await asyncio.wait_for(closed.wait(), 5)
