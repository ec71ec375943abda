"""The Trino plug-in against the real test engine (infra/engines/trino.sh): what the contract does not cover.

Catalog selection, cancellation at the coordinator, HTTPS with password authentication, dialling only the checked
addresses, errors, and the spec's validation. These tests use the engine's `scratch` catalog; the contract owns
`memory`.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from services.connector.sources import trino as trino_plugin
from services.connector.sources.base import SourceError
from services.connector.sources.trino import PinnedAdapter, TrinoSource
from services.core.errors import InvalidInput
from services.core.sources.trino import TRINO, TrinoConfig, TrinoCredentials
from tests.sources.contract import listening
from tests.sources.platforms.trino import execute, reset_catalog, trino_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("STATE_DIR", ".local/test"))
CERTIFICATE = (STATE_DIR if STATE_DIR.is_absolute() else ROOT / STATE_DIR) / "engines/trino/etc/tls/cert.pem"
HTTPS_USER, HTTPS_PASSWORD = os.environ.get("TRINO_USER", "ingest"), os.environ.get("TRINO_PASSWORD", "ingest-secret")
SCRATCH = "scratch"
# Burns CPU until cancelled: three cross-joined sequences of 10,000 are 10^12 rows to count.
ENDLESS_SQL = (
    "SELECT count(*) FROM UNNEST(sequence(1, 10000)) a(x) CROSS JOIN UNNEST(sequence(1, 10000)) b(y) "
    "CROSS JOIN UNNEST(sequence(1, 10000)) c(z) WHERE {name} IS NOT NULL /* %s */"
)


@pytest.fixture(scope="module", autouse=True)
def engine() -> None:
    reason = listening("TRINO_PORT", 18080)[1]
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def scratch() -> None:
    reset_catalog(SCRATCH)
    execute(
        "CREATE SCHEMA scratch.shop",
        "CREATE TABLE scratch.shop.items (id bigint NOT NULL COMMENT 'Item number', price double, "
        "attrs map(varchar, integer), dims row(w real, h real), seen timestamp(6) with time zone) COMMENT 'Stock'",
        "CREATE VIEW scratch.shop.pricey COMMENT 'Over 100' AS SELECT id, price FROM scratch.shop.items "
        "WHERE price > 100",
        'CREATE SCHEMA scratch."odd/name%"',
        'CREATE TABLE scratch."odd/name%"."a""b" (x varchar)',
    )


def source(
    host: str = "127.0.0.1", port: int | None = None, password: str | None = None,
    dial: tuple[str, ...] = ("127.0.0.1",), batch_size: int = 1000, **config: Any,
) -> TrinoSource:  # fmt: skip
    """The plug-in for the test engine, configured with `host` but dialling `dial` (as the SSRF check would)."""
    parsed = TrinoConfig.model_validate({"host": host, "port": port or trino_port(), "username": "ingest"} | config)
    return TrinoSource(parsed, TrinoCredentials(password=password), dial, batch_size=batch_size)


def https_source(password: str = HTTPS_PASSWORD, host: str = "localhost", **config: Any) -> TrinoSource:
    port = int(os.environ.get("TRINO_HTTPS_PORT", 18443))
    return source(host, port, password, https=True, username=HTTPS_USER, **config)


async def crawl_all(plugin: TrinoSource) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        await plugin.test_connection()
        async for batch in plugin.crawl():
            assert 0 < len(batch) <= plugin._batch_size
            for asset in batch:
                assert asset["key"] not in assets
                assets[asset["key"]] = asset
    finally:
        await plugin.close()
    return assets


async def test_crawl_reads_nested_types_comments_views_and_odd_names(scratch: None) -> None:
    assets = await crawl_all(source(catalog=SCRATCH, batch_size=2))
    assert {key for key in assets if key.count("/") <= 2} == {
        "scratch", "scratch/shop", "scratch/shop/items", "scratch/shop/pricey", "scratch/odd%2Fname%25",
        'scratch/odd%2Fname%25/a"b',
    }  # fmt: skip
    items = assets["scratch/shop/items"]["attributes"]
    assert (items["type"], items["comment"], items["schema"]) == ("table", "Stock", "shop")
    view = assets["scratch/shop/pricey"]
    assert view["kind"] == "view" and view["attributes"]["comment"] == "Over 100"
    assert "price > 100" in view["attributes"]["definition"]
    types = {key.rsplit("/", 1)[1]: (a["attributes"]["dataType"], a["attributes"]["normalizedType"])
             for key, a in assets.items() if key.startswith("scratch/shop/items/")}  # fmt: skip
    assert types == {
        "id": ("bigint", "integer"), "price": ("double", "float"), "attrs": ("map(varchar, integer)", "map"),
        "dims": ("row(w real, h real)", "struct"), "seen": ("timestamp(6) with time zone", "timestamp_tz"),
    }  # fmt: skip
    item_id = assets["scratch/shop/items/id"]["attributes"]
    assert (item_id["nullable"], item_id["comment"], item_id["ordinal"]) == (False, "Item number", 1)


async def test_every_catalog_but_system_is_crawled_when_none_is_configured(scratch: None) -> None:
    assets = await crawl_all(source())
    catalogs = {key for key, asset in assets.items() if asset["kind"] == "database"}
    assert catalogs == {"memory", "scratch"}  # the engine's catalogs, without `system`
    assert not any(key.split("/")[1:2] == ["information_schema"] for key in assets)
    assert "scratch/shop/items/price" in assets


async def test_a_missing_catalog_is_refused_naming_the_ones_there() -> None:
    plugin = source(catalog="nowhere")
    with pytest.raises(SourceError, match=r"catalog 'nowhere' does not exist.*memory, scratch"):
        await plugin.test_connection()
    await plugin.close()


async def _query_state(marker: str) -> tuple[str, str | None] | None:
    rows = await asyncio.to_thread(
        execute, "SELECT state, error_code FROM system.runtime.queries "
        f"WHERE query LIKE '%{marker}%' AND query NOT LIKE '%system.runtime.queries%'",
    )  # fmt: skip
    return (rows[0][0], rows[0][1]) if rows else None


async def _poll(marker: str, done: Any, deadline_s: float = 30.0) -> tuple[str, str | None] | None:
    deadline = time.monotonic() + deadline_s
    state = await _query_state(marker)
    while not done(state) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        state = await _query_state(marker)
    return state


async def test_cancelling_a_crawl_cancels_its_query_at_the_coordinator(
    scratch: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"cancel-{uuid.uuid4().hex}"
    monkeypatch.setattr(trino_plugin, "COLUMNS_SQL", ENDLESS_SQL % marker)  # the crawl's last query never ends
    plugin = source(catalog=SCRATCH)

    async def consume() -> None:
        async for _ in plugin.crawl():
            pass

    task = asyncio.create_task(consume())
    running = await _poll(marker, lambda state: state is not None and state[0] == "RUNNING")
    assert running == ("RUNNING", None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = time.monotonic()
    await plugin.close()
    assert time.monotonic() - started < 5
    assert await _poll(marker, lambda state: state is not None and state[0] != "RUNNING") == (
        "FAILED", "USER_CANCELED",
    )  # fmt: skip


async def test_https_with_password_authentication_crawls(scratch: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERTIFICATE))
    assets = await crawl_all(https_source(catalog=SCRATCH))
    assert "scratch/shop/items/price" in assets


async def test_wrong_password_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERTIFICATE))
    plugin = https_source(password="not-the-password-123")
    with pytest.raises(SourceError, match="authentication failed") as refused:
        await plugin.test_connection()
    await plugin.close()
    assert "not-the-password-123" not in str(refused.value)
    assert "localhost" in str(refused.value) and HTTPS_USER in str(refused.value)


async def test_an_untrusted_certificate_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)  # the system's CAs, which never signed the test one
    plugin = https_source()
    with pytest.raises(SourceError, match="CERTIFICATE_VERIFY_FAILED"):
        await plugin.test_connection()
    await plugin.close()


async def test_the_certificate_is_checked_against_the_configured_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERTIFICATE))
    plugin = https_source(host="trino.example.com")  # dials 127.0.0.1, whose certificate names localhost only
    with pytest.raises(SourceError, match=r"not valid for 'trino\.example\.com'"):
        await plugin.test_connection()
    await plugin.close()


def test_a_password_is_never_sent_over_plain_http() -> None:
    with pytest.raises(SourceError, match="only sent over HTTPS"):
        source(password="secret-pw")


async def test_only_the_checked_addresses_are_dialled() -> None:
    # The name does not resolve at all: a client that resolved it again would fail.
    assert "memory" in await crawl_all(source(host="trino.invalid", catalog="memory"))
    plugin = source(dial=("127.0.0.2", "127.0.0.1"))  # the first refuses, the next is tried
    await plugin.test_connection()
    await plugin.close()


def test_the_adapter_refuses_to_follow_the_server_elsewhere() -> None:
    session = requests.Session()
    session.mount("http://", PinnedAdapter("http", "trino.example.com", 8080, ("127.0.0.1",)))
    with pytest.raises(requests.ConnectionError, match="refusing to follow"):
        session.get("http://169.254.169.254:8080/latest/meta-data")
    with pytest.raises(requests.ConnectionError, match="refusing to follow"):
        session.get("http://trino.example.com:9999/v1/statement")


async def test_an_unreachable_server_fails_with_where_and_as_whom() -> None:
    plugin = source(port=1)  # nothing listens there
    with pytest.raises(SourceError, match=r"Cannot reach Trino at http://127.0.0.1:1 as 'ingest'"):
        await plugin.test_connection()
    await plugin.close()


def test_configuration_is_validated() -> None:
    config = TRINO.parse_config({"host": "trino.example.com", "username": "ingest", "catalog": "Hive"})
    assert (config.port, config.https, config.catalog) == (8080, False, "hive")
    for bad in ({"host": "https://trino.example.com", "username": "u"}, {"host": "169.254.169.254", "username": "u"},
                {"host": "h", "username": "u", "port": 0}, {"host": "h", "username": ""},
                {"host": "h", "username": "u", "database": "x"}):  # fmt: skip
        with pytest.raises(InvalidInput):
            TRINO.parse_config(bad)
    assert TRINO.parse_credentials({}).password is None
    assert TRINO.secret_fields == {"password"}


def test_identity_fields_and_endpoints() -> None:
    stored = {"host": "trino.example.com", "port": 8443, "https": True, "username": "ingest", "catalog": "hive"}
    after = TRINO.parse_config(stored | {"https": False, "catalog": "iceberg"})
    assert TRINO.changed_identity(stored, after) == ["configuration.https", "configuration.catalog"]
    assert TRINO.changed_identity(stored, TRINO.parse_config(stored)) == []
    [endpoint] = TRINO.endpoints(TRINO.parse_config(stored))
    assert (endpoint.host, endpoint.port) == ("trino.example.com", 8443)
