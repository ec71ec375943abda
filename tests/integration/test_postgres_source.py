"""The PostgreSQL plug-in against a real database of known shape, dialled at checked addresses only."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from services.connector.sources.base import SourceError
from services.connector.sources.postgres import PostgresSource
from services.core.sources import CheckedAddresses
from services.core.sources.postgres import PostgresConfig, PostgresCredentials
from tests.support import SHOP_ASSETS, create_shop_database

pytestmark = pytest.mark.integration


def source_for(dsn: str, password: str | None = None, host: str | None = None, **config: object) -> PostgresSource:
    """The plug-in for `dsn`'s database, configured with `host` (default: the DSN's) but dialling the DSN's host."""
    url = urlparse(dsn)
    assert url.hostname == "127.0.0.1" and url.port  # tests only ever connect to the local server
    base = {"host": host or url.hostname, "port": url.port, "database": url.path.lstrip("/"),
            "username": url.username, "sslmode": "disable"}  # fmt: skip
    parsed = PostgresConfig.model_validate(base | config)
    addresses = CheckedAddresses({(parsed.host, parsed.port): (url.hostname,)})
    return PostgresSource.create(parsed, PostgresCredentials(password=password or url.password or ""), addresses)


async def crawl_all(source: PostgresSource) -> dict[str, dict]:
    assets: dict[str, dict] = {}
    try:
        async for batch in source.crawl():
            for asset in batch:
                assets[asset["key"]] = asset
    finally:
        await source.close()
    return assets


@pytest.fixture(scope="module")
async def shop(database: str) -> str:
    return await create_shop_database(database, "source_shop_it")


async def test_crawl_finds_schemas_relations_and_columns(shop):
    assets = await crawl_all(source_for(shop))
    assert len(assets) == SHOP_ASSETS
    kinds = sorted(a["kind"] for a in assets.values())
    assert kinds.count("schema") == 3 and kinds.count("table") == 3 and kinds.count("view") == 1
    assert kinds.count("column") == 13


async def test_crawl_reads_types_nullability_comments_and_keys(shop):
    assets = await crawl_all(source_for(shop))
    db = "source_shop_it"
    customers = assets[f"{db}/sales/customers"]
    assert customers["attributes"]["comment"] == "People who buy"
    assert customers["attributes"]["primaryKey"] == ["id"]
    assert assets[f"{db}/sales"]["attributes"]["comment"] == "Sales data"
    email = assets[f"{db}/sales/customers/email"]["attributes"]
    assert (email["dataType"], email["nullable"], email["comment"]) == ("text", True, "Contact address")
    name = assets[f"{db}/sales/customers/name"]["attributes"]
    assert name["nullable"] is False
    total = assets[f"{db}/sales/orders/total"]["attributes"]
    assert total["dataType"] == "numeric(12,2)"
    [fk] = assets[f"{db}/sales/orders"]["attributes"]["foreignKeys"]
    assert fk["columns"] == ["customer_id"]
    assert fk["references"] == {"schema": "sales", "table": "customers", "columns": ["id"]}
    view = assets[f"{db}/sales/big_orders"]
    assert view["kind"] == "view" and "total > " in view["attributes"]["definition"]


async def test_schema_include_and_exclude_patterns(shop):
    only_hr = await crawl_all(source_for(shop, includeSchemas=["h*"]))
    assert sorted(k for k, a in only_hr.items() if a["kind"] == "schema") == ["source_shop_it/hr"]
    no_public = await crawl_all(source_for(shop, excludeSchemas=["public"]))
    assert "source_shop_it/public" not in no_public and "source_shop_it/sales" in no_public


async def test_wrong_password_fails_with_a_message_without_the_password(shop):
    with pytest.raises(SourceError) as error:
        await crawl_all(source_for(shop, password="definitely-wrong-pw"))
    assert "Cannot connect to PostgreSQL" in str(error.value)
    assert "definitely-wrong-pw" not in str(error.value)


async def test_the_crawl_dials_the_checked_address_and_never_resolves_the_name(shop):
    # No resolver knows this name: the crawl works only if the driver connects to the checked address.
    assets = await crawl_all(source_for(shop, host="shop.db.invalid"))
    assert len(assets) == SHOP_ASSETS


async def test_a_refused_connection_names_the_host_and_the_address_dialled(shop):
    with pytest.raises(SourceError, match=r"at shop\.db\.invalid:1 \(127\.0\.0\.1\)/source_shop_it"):
        await crawl_all(source_for(shop, host="shop.db.invalid", port=1))


async def test_a_columns_fingerprint_covers_its_normalized_type(shop, monkeypatch):
    # The source digests what it reads; the normalized type is ours. Were it left out, columns stored before a change of
    # the normalization rules (or before there was one) would keep their old attributes for ever.
    before = await crawl_all(source_for(shop))
    monkeypatch.setattr("services.connector.sources.postgres.normalized_type", lambda native: "other")
    after = await crawl_all(source_for(shop))
    columns = [key for key, asset in before.items() if asset["kind"] == "column"]
    assert columns and all(before[k]["fingerprint"] != after[k]["fingerprint"] for k in columns)
