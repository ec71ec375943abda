"""The Snowflake plug-in on its emulator (infra/engines/fakesnow.sh): keys, the crawl of every database, abort at the
server on close, dialling only checked addresses (over https through the pinned tunnel, with TLS verified against
the configured name), errors, and the configuration's validation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.connector.sources.base import SourceError, SourceReport
from services.connector.sources.snowflake import Keys, PinnedTunnel, SnowflakeSource, data_type, identifier
from services.core.errors import InvalidInput
from services.core.sources.snowflake import SNOWFLAKE, SnowflakeConfig, SnowflakeCredentials
from tests.integration.test_postgres_tls import server_context, test_ca  # noqa: F401  (test_ca: a fixture)
from tests.sources.platforms.snowflake import DATABASE, SnowflakePlatform, fakesnow_password, fakesnow_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "acme.snowflake.test"  # resolves nowhere: a connection to it works only through the checked address
# Minutes of DuckDB work on the emulator unless it is aborted.
SLOW_SQL = "SELECT COUNT(DISTINCT HASH(SEQ8()) % 1000000007) FROM TABLE(GENERATOR(ROWCOUNT => 2000000000))"


def source(address: str = "127.0.0.1", password: str | None = None, **config: Any) -> SnowflakeSource:
    """The plug-in configured with `config` (default: the emulator over http), dialling `address`."""
    base = {"account": "acme", "username": "crawler", "host": "127.0.0.1", "port": fakesnow_port(), "protocol": "http"}
    parsed = SnowflakeConfig.model_validate(base | config)
    credentials = SnowflakeCredentials(password=password or fakesnow_password())
    return SnowflakeSource(parsed, credentials, (address,), login_timeout_s=5)


async def crawl_all(plugin: SnowflakeSource) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        async for batch in plugin.crawl():
            assets.update((asset["key"], asset) for asset in batch)
    finally:
        await plugin.close()
    return assets


@pytest.fixture(scope="module")
async def fixture() -> None:
    platform = SnowflakePlatform()
    if (reason := platform.unavailable()) is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    await platform.create_fixture()


async def test_the_crawl_of_every_database_reads_primary_keys_in_one_statement(fixture):
    plugin = source()  # no database: SHOW DATABASES, and SHOW ... KEYS IN ACCOUNT once
    assets = await crawl_all(plugin)
    assert assets[f"{DATABASE}/SALES/CUSTOMERS"]["attributes"]["primaryKey"] == ["ID"]
    assert assets[f"{DATABASE}/SALES/ORDERS/ID"]["attributes"]["primaryKey"] is True
    assert assets[f"{DATABASE}/SALES/ORDERS/AMOUNT"]["attributes"]["primaryKey"] is False
    assert assets[f"{DATABASE}/SALES/BIG_ORDERS"]["attributes"]["primaryKey"] == []
    # fakesnow's SHOW IMPORTED KEYS lists each primary key as a foreign key to no table: left out, and said so.
    assert assets[f"{DATABASE}/SALES/ORDERS"]["attributes"]["foreignKeys"] == []
    assert any("names no referenced table" in warning for warning in plugin.report.warnings)


async def test_a_configured_database_is_case_insensitive_and_read_with_show_keys_in_database(fixture):
    plugin = source(database=DATABASE.lower())
    assets = await crawl_all(plugin)
    assert f"{DATABASE}/SALES/ORDERS/CREATED_AT" in assets
    # fakesnow implements no SHOW ... KEYS IN DATABASE: the crawl goes on without keys and says why.
    assert any(f'SHOW PRIMARY KEYS IN DATABASE "{DATABASE}"' in warning for warning in plugin.report.warnings)


async def test_tables_and_columns_arrive_in_batches_as_they_are_read(fixture):
    plugin = SnowflakeSource(
        SnowflakeConfig(account="acme", username="crawler", host="127.0.0.1", port=fakesnow_port(), protocol="http",
                        database=DATABASE),
        SnowflakeCredentials(password=fakesnow_password()), ("127.0.0.1",), batch_size=2,
    )  # fmt: skip
    try:
        batches = [[asset["kind"] for asset in batch] async for batch in plugin.crawl()]
    finally:
        await plugin.close()
    assert batches[0] == ["database", "schema", "schema"]
    assert all(len(batch) <= 2 for batch in batches[1:])
    assert sum(batch.count("column") for batch in batches) == 12


def test_keys_are_grouped_by_constraint_in_key_order():
    def row(table: str, column: str, sequence: int, name: str) -> dict[str, Any]:
        return {"database_name": "DB", "schema_name": "S", "table_name": table, "column_name": column,
                "key_sequence": sequence, "constraint_name": name}  # fmt: skip

    def imported(column: str, pk_column: str, sequence: int, database: str = "DB") -> dict[str, Any]:
        return {"fk_database_name": "DB", "fk_schema_name": "S", "fk_table_name": "LINES", "fk_column_name": column,
                "pk_database_name": database, "pk_schema_name": "S", "pk_table_name": "ORDERS",
                "pk_column_name": pk_column, "key_sequence": sequence, "fk_name": f"FK_{database}"}  # fmt: skip

    keys = Keys.from_rows(
        [row("ORDERS", "LINE", 2, "PK"), row("ORDERS", "ID", 1, "PK")],
        [row("ORDERS", "CODE", 1, "UQ_B"), row("ORDERS", "REF", 2, "UQ_A"), row("ORDERS", "REGION", 1, "UQ_A")],
        [imported("LINE", "LINE", 2), imported("ORDER_ID", "ID", 1), imported("ORDER_ID", "ID", 1, "OTHER")],
        SourceReport(),
    )
    assert keys.primary == {("DB", "S", "ORDERS"): ["ID", "LINE"]}
    assert keys.unique == {("DB", "S", "ORDERS"): [["REGION", "REF"], ["CODE"]]}
    local, other = keys.foreign[("DB", "S", "LINES")]
    assert local == {"name": "FK_DB", "columns": ["ORDER_ID", "LINE"],
                     "references": {"schema": "S", "table": "ORDERS", "columns": ["ID", "LINE"]}}  # fmt: skip
    assert other["references"]["database"] == "OTHER"


@pytest.mark.parametrize(
    ("row", "spelled"),
    [
        ({"DATA_TYPE": "TEXT", "CHARACTER_MAXIMUM_LENGTH": 200, "NUMERIC_PRECISION": None}, "VARCHAR(200)"),
        (
            {"DATA_TYPE": "NUMBER", "CHARACTER_MAXIMUM_LENGTH": None, "NUMERIC_PRECISION": 38, "NUMERIC_SCALE": 0},
            "NUMBER(38,0)",
        ),
        ({"DATA_TYPE": "BINARY", "CHARACTER_MAXIMUM_LENGTH": 16, "NUMERIC_PRECISION": None}, "BINARY(16)"),
        ({"DATA_TYPE": "ARRAY", "CHARACTER_MAXIMUM_LENGTH": None, "NUMERIC_PRECISION": None}, "ARRAY"),
    ],
)
def test_types_are_spelled_as_snowflake_describes_them(row, spelled):
    assert data_type(row) == spelled


def test_unquoted_database_names_are_upper_cased_and_others_kept():
    assert identifier("analytics_2") == "ANALYTICS_2"
    assert identifier("My Data") == "My Data"
    assert identifier("2fast") == "2fast"


def _log() -> Path:
    state = Path(os.environ.get("STATE_DIR", ".local/test"))
    return (state if state.is_absolute() else ROOT / state) / "engines" / "fakesnow" / "fakesnow.log"


async def _interrupted_after(offset: int, deadline_s: float = 10) -> bool:
    """Whether the emulator logs that it interrupted a query for an abort request (after byte `offset` of its log)."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        text = _log().read_bytes()[offset:].decode(errors="replace")
        if "Abort request: interrupting" in text and "INTERRUPT Error" in text:
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.parametrize("cancel_first", [True, False], ids=["crawl-cancelled-then-closed", "closed-while-running"])
async def test_close_aborts_the_running_query_at_the_server_within_seconds(fixture, cancel_first):
    if not _log().exists():
        pytest.skip(f"the emulator's log is not at {_log()}: it was not started by infra/engines/fakesnow.sh")
    offset = _log().stat().st_size
    plugin = source()
    await plugin.test_connection()
    running = asyncio.ensure_future(plugin._rows(SLOW_SQL))
    done, _ = await asyncio.wait([running], timeout=1.0)
    assert not done, "the query should still run at the server"
    if cancel_first:
        running.cancel()  # how the connector's run cancels a crawl
    started = time.monotonic()
    await plugin.close()
    assert time.monotonic() - started < 5
    with contextlib.suppress(asyncio.CancelledError, SourceError):
        await running
    assert running.done()
    assert await _interrupted_after(offset), "the server did not stop the query"


async def test_the_crawl_dials_the_checked_address_and_never_resolves_the_name(fixture):
    assets = await crawl_all(source(host=NAME, database=DATABASE))
    assert f"{DATABASE}/SALES/CUSTOMERS/EMAIL" in assets


async def test_a_refused_connection_names_the_server_and_the_address_dialled():
    with pytest.raises(SourceError, match=rf"http://{NAME}:1 \(127\.0\.0\.1\) as 'crawler'"):
        await source(host=NAME, port=1).test_connection()


async def test_a_missing_database_fails_the_test_connection(fixture):
    plugin = source(database="NO_SUCH_DATABASE")
    try:
        with pytest.raises(SourceError, match="NO_SUCH_DATABASE"):
            await plugin.test_connection()
    finally:
        await plugin.close()


# https: a TLS server for NAME (certificate from a test CA) in front of the emulator; the plug-in's tunnel dials it.


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def tls_front(context: Any) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", fakesnow_port())
        await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def https_source(port: int, ca: Path) -> SnowflakeSource:
    config = SnowflakeConfig(account="acme", username="crawler", host=NAME, port=port, protocol="https",
                             database=DATABASE)  # fmt: skip
    return SnowflakeSource(config, SnowflakeCredentials(password=fakesnow_password()), ("127.0.0.1",),
                           login_timeout_s=5, ca_file=str(ca / "ca.pem"))  # fmt: skip


async def test_https_reaches_the_checked_address_through_the_tunnel_with_the_name_verified(fixture, test_ca):  # noqa: F811
    async with tls_front(server_context(test_ca, NAME)) as port:
        assets = await crawl_all(https_source(port, test_ca[0]))
    assert f"{DATABASE}/SALES/ORDERS" in assets


async def test_https_refuses_a_certificate_for_another_name(fixture, test_ca):  # noqa: F811
    async with tls_front(server_context(test_ca, "elsewhere.example.test")) as port:
        plugin = https_source(port, test_ca[0])
        try:
            with pytest.raises(SourceError, match="Cannot log in"):
                await plugin.test_connection()
        finally:
            await plugin.close()


async def _connect_through(tunnel: PinnedTunnel, target: str) -> bytes:
    url = await tunnel.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = await reader.readline()
    writer.close()
    await tunnel.close()
    return answer


async def test_the_tunnel_refuses_a_private_host_when_the_server_is_public(fixture):
    # The configured server's address is public (never dialled here): a private one the server names is refused.
    tunnel = PinnedTunnel("account.snowflakecomputing.com", 443, ("8.8.8.8",))
    assert (await _connect_through(tunnel, f"localhost:{fakesnow_port()}")).startswith(b"HTTP/1.1 403")
    assert tunnel.refused == [f"localhost:{fakesnow_port()}"]


async def test_the_tunnel_allows_other_private_hosts_when_the_server_is_private(fixture):
    tunnel = PinnedTunnel(NAME, 443, ("127.0.0.1",))
    assert (await _connect_through(tunnel, f"localhost:{fakesnow_port()}")).startswith(b"HTTP/1.1 200")


async def test_the_tunnel_dials_the_checked_address_for_the_configured_name(fixture):
    tunnel = PinnedTunnel(NAME, fakesnow_port(), ("127.0.0.1",))
    assert (await _connect_through(tunnel, f"{NAME.upper()}:{fakesnow_port()}")).startswith(b"HTTP/1.1 200")


# Configuration


def test_the_server_is_the_account_url_unless_a_host_is_given():
    config = SNOWFLAKE.parse_config({"account": "my_org-acct", "username": "u"})
    assert (config.server_host, config.server_port) == ("my-org-acct.snowflakecomputing.com", 443)
    [endpoint] = SNOWFLAKE.endpoints(config)
    assert (endpoint.host, endpoint.port, endpoint.field) == (config.server_host, 443, "configuration.account")
    private = SNOWFLAKE.parse_config({"account": "a", "username": "u", "host": "sf.internal", "protocol": "http"})
    [endpoint] = SNOWFLAKE.endpoints(private)
    assert (endpoint.host, endpoint.port, endpoint.field) == ("sf.internal", 80, "configuration.host")


@pytest.mark.parametrize(
    "config",
    [
        {"account": "acme.snowflakecomputing.com", "username": "u"},
        {"account": "https://acme", "username": "u"},
        {"account": "acme", "username": "u", "host": "https://sf.internal"},
        {"account": "acme", "username": "u", "host": "sf.internal:443"},
        {"account": "acme", "username": "u", "protocol": "ftp"},
        {"account": "acme", "username": "u", "port": 0},
        {"account": "acme"},
        {"account": "acme", "username": "u", "schema": "S"},
    ],
)
def test_bad_configurations_are_refused(config):
    with pytest.raises(InvalidInput):
        SNOWFLAKE.parse_config(config)


def test_an_ipv6_host_is_accepted():
    assert SNOWFLAKE.parse_config({"account": "a", "username": "u", "host": "::1"}).host == "::1"


def test_identity_fields_are_where_and_as_whom_the_password_goes():
    stored = {"account": "acme", "username": "u", "warehouse": "W", "database": "D"}
    assert (
        SNOWFLAKE.changed_identity(stored, SNOWFLAKE.parse_config(stored | {"warehouse": "X", "database": "E"})) == []
    )
    for field, value in [("account", "evil"), ("username", "v"), ("host", "evil.example"), ("port", 8443),
                         ("protocol", "http"), ("role", "ACCOUNTADMIN")]:  # fmt: skip
        assert SNOWFLAKE.changed_identity(stored, SNOWFLAKE.parse_config(stored | {field: value})) == [
            f"configuration.{field}"
        ]
    assert SNOWFLAKE.secret_fields == frozenset({"password"})
