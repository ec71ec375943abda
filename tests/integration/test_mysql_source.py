"""The MySQL/MariaDB plug-in against the real MariaDB server (infra/engines/mariadb.sh): what the contract does not
cover — database selection, keys and kinds, statistics kept out of fingerprints, set-based reads, cancellation at
the server, TLS, errors, and the spec's validation."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from services.connector.sources.base import SourceError
from services.connector.sources.mysql import MySQLSource
from services.core.errors import InvalidInput
from services.core.sources import CheckedAddresses, Endpoint
from services.core.sources.mysql import MARIADB, MYSQL, MySQLConfig, MySQLCredentials
from tests.sources.contract import listening
from tests.sources.platforms.mysql import (
    DEFAULT_PORT,
    PORT_VARIABLE,
    engine_password,
    engine_port,
    root_connection,
    run_sql,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

SHOP, OTHER, WIDE, LOCKED = "it_mysql_shop", "it_mysql_other", "it_mysql_wide", "it_mysql_locked"
WIDE_TABLES = 60
ROOT = Path(__file__).resolve().parents[2]
TLS_CA = Path(os.environ.get("STATE_DIR", ".local/test")).joinpath("engines/mariadb/tls/ca.pem")
TLS_CA = TLS_CA if TLS_CA.is_absolute() else ROOT / TLS_CA


def source_for(
    password: str | None = None, host: str = "127.0.0.1", port: int | None = None, batch_size: int = 1000,
    username: str = "root", **config: Any,
) -> MySQLSource:  # fmt: skip
    """The plug-in configured with `host` but dialling 127.0.0.1, the only address tests ever connect to."""
    parsed = MySQLConfig.model_validate({"host": host, "port": port or engine_port(), "username": username} | config)
    addresses = CheckedAddresses({(parsed.host, parsed.port): ("127.0.0.1",)})
    credentials = MySQLCredentials(password=password or engine_password())
    return MySQLSource(parsed, credentials, addresses.of(parsed.host, parsed.port), batch_size=batch_size)


async def crawl_all(source: MySQLSource) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        async for batch in source.crawl():
            for asset in batch:
                assets[asset["key"]] = asset
    finally:
        await source.close()
    return assets


@pytest.fixture(scope="module", autouse=True)
async def engine() -> None:
    reason = listening(PORT_VARIABLE, DEFAULT_PORT)[1]
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
async def shop(engine: None) -> str:
    """A database with every kind the plug-in tells apart, and one beside it."""
    await run_sql(
        f"DROP DATABASE IF EXISTS {SHOP}", f"DROP DATABASE IF EXISTS {OTHER}",
        f"CREATE DATABASE {SHOP} CHARACTER SET latin1", f"CREATE DATABASE {OTHER}",
        f"CREATE TABLE {OTHER}.things (id INT PRIMARY KEY)",
        f"""CREATE TABLE {SHOP}.customers (
              id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
              name VARCHAR(50) NOT NULL DEFAULT 'anon',
              note TEXT,
              active TINYINT(1) NOT NULL DEFAULT 1,
              created DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
        f"""CREATE TABLE {SHOP}.lines (
              order_id INT NOT NULL, line_no INT NOT NULL, sku CHAR(8) NOT NULL, warehouse CHAR(3) NOT NULL,
              price DECIMAL(12,2) AS (1.5 * line_no) VIRTUAL,
              PRIMARY KEY (order_id, line_no), CONSTRAINT uq_sku UNIQUE (warehouse, sku))""",
        f"CREATE TABLE {SHOP}.codes (code CHAR(2) NOT NULL, UNIQUE KEY (code))",
        f"CREATE TABLE {SHOP}.prices (id INT PRIMARY KEY, amount DECIMAL(8,2)) WITH SYSTEM VERSIONING",
        f"CREATE SEQUENCE {SHOP}.order_numbers",
        f"CREATE TABLE {SHOP}.gone (id INT)",
        f"CREATE VIEW {SHOP}.broken AS SELECT id FROM {SHOP}.gone",
        f"DROP TABLE {SHOP}.gone",
    )  # fmt: skip
    return SHOP


async def test_a_database_is_a_schema_at_the_root_and_system_databases_are_never_crawled(shop: str) -> None:
    assets = await crawl_all(source_for())
    schemas = {key: asset for key, asset in assets.items() if asset["kind"] == "schema"}
    assert {shop, OTHER} <= set(schemas)
    assert not {"mysql", "information_schema", "performance_schema", "sys"} & set(schemas)
    assert schemas[shop]["parent_key"] == "" and schemas[shop]["attributes"]["characterSet"] == "latin1"
    assert not any(asset["kind"] == "database" for asset in assets.values())  # no container level
    everything = await crawl_all(source_for(includeSchemas=["*"]))
    assert not {"mysql", "information_schema", "performance_schema", "sys"} & set(everything)


async def test_database_in_the_configuration_crawls_only_that_one(shop: str) -> None:
    assets = await crawl_all(source_for(database=OTHER))
    assert set(assets) == {OTHER, f"{OTHER}/things", f"{OTHER}/things/id"}


async def test_include_and_exclude_patterns_select_databases(shop: str) -> None:
    only = await crawl_all(source_for(includeSchemas=["it_mysql_s*"]))
    assert {a["name"] for a in only.values() if a["kind"] == "schema"} == {shop}
    without = await crawl_all(source_for(includeSchemas=["it_mysql_*"], excludeSchemas=["*_shop"]))
    assert OTHER in without and shop not in without
    nothing = source_for(includeSchemas=["no_such_*"])
    assert await crawl_all(nothing) == {}
    assert "No database matched" in nothing.report.summary()


async def test_keys_defaults_and_kinds_as_the_server_declares_them(shop: str) -> None:
    source = source_for(database=shop)
    assets = await crawl_all(source)
    lines = assets[f"{shop}/lines"]["attributes"]
    assert lines["primaryKey"] == ["order_id", "line_no"] and lines["uniqueKeys"] == [["warehouse", "sku"]]
    assert assets[f"{shop}/lines/price"]["attributes"]["extra"] == "VIRTUAL GENERATED"
    # No primary key: the server shows the unique NOT NULL column as PRI in COLUMN_KEY, but it is not one.
    assert assets[f"{shop}/codes"]["attributes"]["primaryKey"] == []
    assert assets[f"{shop}/codes/code"]["attributes"]["primaryKey"] is False
    customer = {name: assets[f"{shop}/customers/{name}"]["attributes"] for name in ("id", "name", "note", "active")}
    assert (customer["id"]["dataType"], customer["id"]["extra"]) == ("int(10) unsigned", "auto_increment")
    assert customer["id"]["normalizedType"] == "integer" and customer["active"]["normalizedType"] == "boolean"
    assert customer["name"]["default"] == "'anon'" and customer["note"]["default"] is None
    prices = assets[f"{shop}/prices"]
    assert prices["kind"] == "table" and prices["attributes"]["systemVersioned"] is True
    assert f"{shop}/order_numbers" not in assets  # a sequence is not a table
    assert assets[f"{shop}/broken"]["kind"] == "view"
    assert any("broken" in warning for warning in source.report.warnings)


async def test_statistics_never_reach_a_fingerprint(shop: str) -> None:
    before = await crawl_all(source_for(database=shop))
    await run_sql(
        f"INSERT INTO {shop}.customers (name) VALUES ('a'), ('b'), ('c')",  # rows, sizes, AUTO_INCREMENT, UPDATE_TIME
        f"ANALYZE TABLE {shop}.customers",
    )
    after = await crawl_all(source_for(database=shop))
    assert {k: a["fingerprint"] for k, a in after.items()} == {k: a["fingerprint"] for k, a in before.items()}
    statistics = {"rows", "tableRows", "dataLength", "size", "updateTime", "autoIncrement", "createTime"}
    assert not any(statistics & set(asset["attributes"]) for asset in after.values())


async def _questions() -> int:
    [(_, value)] = await run_sql("SHOW GLOBAL STATUS LIKE 'Questions'")
    return int(value)


async def _statements_and_batches(database: str, batch_size: int) -> tuple[int, list[int]]:
    source = source_for(database=database, batch_size=batch_size)
    sizes: list[int] = []
    before = await _questions()
    try:
        async for batch in source.crawl():
            sizes.append(len(batch))
    finally:
        await source.close()
    return await _questions() - before, sizes


@pytest.fixture(scope="module")
async def wide(engine: None) -> str:
    tables = [f"CREATE TABLE {WIDE}.t{i:02d} (id INT PRIMARY KEY, a VARCHAR(10), b INT)" for i in range(WIDE_TABLES)]
    await run_sql(f"DROP DATABASE IF EXISTS {WIDE}", f"CREATE DATABASE {WIDE}", *tables)
    return WIDE


async def test_reads_are_set_based_and_arrive_in_batches(shop: str, wide: str) -> None:
    small, _ = await _statements_and_batches(OTHER, 1000)
    large, sizes = await _statements_and_batches(wide, 25)
    assert large == small  # the same statements for 1 table as for 60
    assert sum(sizes) == 1 + WIDE_TABLES * 4 and max(sizes) <= 25 and len(sizes) >= (WIDE_TABLES * 4) // 25


async def _processlist(where: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = await root_connection()
    try:
        cursor = await conn.cursor()
        sql = "SELECT ID, COMMAND, STATE, INFO FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND "
        await cursor.execute(sql + where, args)
        return list(await cursor.fetchall())
    finally:
        conn.close()


async def _gone(connection_id: int) -> bool:
    return not await _processlist("ID = %s", connection_id)


async def _drain(source: MySQLSource) -> None:
    async for _ in source.crawl():
        pass


@contextlib.asynccontextmanager
async def _long_ddl_in(database: str) -> AsyncIterator[None]:
    """A CREATE TABLE ... SELECT that runs for two minutes: until it ends it holds an exclusive metadata lock on the
    new table, so reading the database's tables from information_schema waits behind it (as behind any long DDL)."""
    await run_sql(f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}",
                  f"CREATE TABLE {database}.t (id INT PRIMARY KEY)")  # fmt: skip
    blocker = await root_connection()
    cursor = await blocker.cursor()
    ddl = asyncio.create_task(cursor.execute(f"CREATE TABLE {database}.slow AS SELECT SLEEP(120) AS s"))
    try:
        await eventually(lambda: _processlist("ID = %s AND STATE = 'User sleep'", blocker.thread_id()), 10, 0.05)
        yield
    finally:
        await run_sql(f"KILL {blocker.thread_id()}")
        with contextlib.suppress(Exception):
            await ddl
        blocker.close()
        await run_sql(f"DROP DATABASE IF EXISTS {database}")


async def test_a_cancelled_crawl_is_killed_at_the_server_within_seconds(engine: None) -> None:
    async with _long_ddl_in(LOCKED):
        source = source_for(database=LOCKED)
        crawl = asyncio.create_task(_drain(source))
        [(crawl_id, *_)] = await eventually(lambda: _processlist(
            "STATE = 'Waiting for table metadata lock' AND INFO LIKE %s", "%information_schema.TABLES%"
        ))  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        crawl.cancel()  # what the executor does, then it awaits close()
        with pytest.raises(asyncio.CancelledError):
            await crawl
        await source.close()
        assert loop.time() - started < 5
        # The statement ended at the server, and with it the crawl's connection: nothing runs on.
        await eventually(lambda: _gone(crawl_id), timeout=5, interval=0.05)
        assert source.report.warnings == []


async def test_closing_in_the_middle_of_the_column_stream_ends_the_session(wide: str) -> None:
    source = source_for(database=wide, batch_size=10)
    crawl = cast(AsyncGenerator[list[dict[str, Any]], None], source.crawl())
    while (await anext(crawl))[0]["kind"] != "column":  # the schema, then the tables, then the first columns
        pass
    sessions = await _processlist("USER = 'root' AND DB = %s", wide)
    assert len(sessions) == 1
    [(crawl_id, *_)] = sessions
    await crawl.aclose()
    async with asyncio.timeout(5):
        await source.close()
    await eventually(lambda: _gone(crawl_id), timeout=5, interval=0.05)


async def test_wrong_password_fails_naming_host_port_and_user_never_the_password(shop: str) -> None:
    with pytest.raises(SourceError) as error:
        await crawl_all(source_for(password="definitely-wrong-pw"))
    message = str(error.value)
    assert f"at 127.0.0.1:{engine_port()} as 'root'" in message and "Access denied" in message
    assert "definitely-wrong-pw" not in message


async def test_the_crawl_dials_the_checked_address_and_never_resolves_the_name(shop: str) -> None:
    # No resolver knows this name: the crawl works only because the plug-in connects to the checked address.
    assets = await crawl_all(source_for(host="mysql.db.invalid", database=OTHER))
    assert set(assets) == {OTHER, f"{OTHER}/things", f"{OTHER}/things/id"}


async def test_a_refused_connection_names_the_host_and_the_address_dialled(engine: None) -> None:
    with pytest.raises(SourceError, match=r"at mysql\.db\.invalid:1 \(127\.0\.0\.1\) as 'root'"):
        await crawl_all(source_for(host="mysql.db.invalid", port=1))


async def test_an_unknown_database_fails_the_connection_test_with_its_name(engine: None) -> None:
    source = source_for(database="it_mysql_no_such_db")
    try:
        with pytest.raises(SourceError, match=r"/it_mysql_no_such_db as 'root'.*Unknown database"):
            await source.test_connection()
    finally:
        await source.close()


@pytest.fixture(scope="module")
async def tls_user(shop: str) -> str:
    """A user the server lets in over TLS only."""
    await run_sql(
        "DROP USER IF EXISTS 'it_tls'@'127.0.0.1'",
        "CREATE USER 'it_tls'@'127.0.0.1' IDENTIFIED BY 'tls-only-pw' REQUIRE SSL",
        f"GRANT SELECT, SHOW VIEW ON {OTHER}.* TO 'it_tls'@'127.0.0.1'",
    )
    return "it_tls"


async def test_tls_is_used_when_offered_and_refused_logins_say_why(tls_user: str) -> None:
    preferred = await crawl_all(source_for("tls-only-pw", username=tls_user))
    assert set(preferred) == {OTHER, f"{OTHER}/things", f"{OTHER}/things/id"}  # it sees what it may, in TLS
    with pytest.raises(SourceError, match="Access denied"):
        await crawl_all(source_for("tls-only-pw", username=tls_user, sslMode="disabled"))


async def test_verify_identity_checks_the_certificate_against_the_configured_host(
    tls_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not TLS_CA.exists():
        pytest.skip(f"no test CA at {TLS_CA} (infra/engines/mariadb.sh makes it)")
    monkeypatch.setenv("MYSQL_SSL_CA", str(TLS_CA))
    # The certificate names localhost and 127.0.0.1; the plug-in dials 127.0.0.1 but checks the configured name.
    assert await crawl_all(source_for("tls-only-pw", host="localhost", username=tls_user, sslMode="verify_identity"))
    assert await crawl_all(source_for("tls-only-pw", host="db.example.invalid", username=tls_user, sslMode="verify_ca"))
    with pytest.raises(SourceError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await crawl_all(source_for("tls-only-pw", host="db.example.invalid", username=tls_user,
                                   sslMode="verify_identity"))  # fmt: skip
    monkeypatch.delenv("MYSQL_SSL_CA")
    with pytest.raises(SourceError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):  # our CA is not the system's
        await crawl_all(source_for("tls-only-pw", host="localhost", username=tls_user, sslMode="verify_ca"))


# The spec: configuration shape, secrets, identity and endpoints, the same for both platforms.


@pytest.mark.parametrize("spec", [MYSQL, MARIADB], ids=lambda s: s.name)
def test_both_platforms_share_one_configuration_and_plugin(spec: Any) -> None:
    config = spec.parse_config({"host": "db.example.com", "username": "reader", "includeSchemas": ["app_*"]})
    assert (config.port, config.database, config.include_schemas, config.ssl_mode) == (3306, None, ["app_*"],
                                                                                        "preferred")  # fmt: skip
    assert spec.secret_fields == {"password"}
    assert spec.endpoints(config) == [Endpoint("db.example.com", 3306)]
    assert spec.plugin_factory() == MySQLSource.create
    assert spec.identity_fields == ("host", "port", "username", "database", "ssl_mode")


@pytest.mark.parametrize(
    "configuration, field",
    [
        ({"host": "mysql://db:3306", "username": "u"}, "configuration.host"),
        ({"host": "db", "username": "u", "port": 0}, "configuration.port"),
        ({"host": "db"}, "configuration.username"),
        ({"host": "db", "username": "u", "database": ""}, "configuration.database"),
        ({"host": "db", "username": "u", "sslMode": "sometimes"}, "configuration.sslMode"),
        ({"host": "db", "username": "u", "schema": "x"}, "configuration.schema"),
    ],
)
def test_invalid_configuration_names_the_field(configuration: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as error:
        MYSQL.parse_config(configuration)
    assert error.value.field == field


def test_changing_where_or_as_whom_the_password_goes_is_an_identity_change() -> None:
    stored = {"host": "db", "port": 3306, "username": "u", "database": "app", "sslMode": "verify_identity"}
    same = MYSQL.parse_config(stored | {"includeSchemas": ["x"]})
    assert MYSQL.changed_identity(stored, same) == []
    moved = MYSQL.parse_config(stored | {"host": "elsewhere", "database": None, "sslMode": "disabled"})
    assert MYSQL.changed_identity(stored, moved) == [
        "configuration.host", "configuration.database", "configuration.sslMode",
    ]  # fmt: skip
