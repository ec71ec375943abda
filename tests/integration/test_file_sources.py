"""SQLite and DuckDB files as sources: the FILE_SOURCES_ROOT rule (at validation and again at open), read-only
access, what each platform's catalog yields beyond the contract, and cancellation at the source."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from services.connector.sources import duckdb as duckdb_source
from services.connector.sources import sqlite as sqlite_source
from services.connector.sources.base import SourceError
from services.connector.sources.duckdb import DuckdbSource
from services.core.errors import InvalidInput
from services.core.sources import CheckedAddresses, SourceSpec
from services.core.sources.files import DUCKDB, FILE_SOURCES_ROOT, SQLITE
from tests.support import eventually

pytestmark = pytest.mark.integration

SPECS = [SQLITE, DUCKDB]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sources"
    root.mkdir()
    monkeypatch.setenv(FILE_SOURCES_ROOT, str(root))
    return root


def plugin(spec: SourceSpec[Any, Any], path: str | Path) -> Any:
    return spec.plugin_factory()(
        spec.parse_config({"path": str(path)}), spec.parse_credentials({}), CheckedAddresses({})
    )


async def crawl_all(source: Any) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        await source.test_connection()
        async for batch in source.crawl():
            assets |= {asset["key"]: asset for asset in batch}
    finally:
        await source.close()
    return assets


def sqlite_file(path: Path, script: str) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(script)
    conn.close()
    return path


def duckdb_file(path: Path, script: str) -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute(script)
    return path


# -- the FILE_SOURCES_ROOT rule --


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_without_file_sources_root_the_platform_is_refused_naming_the_variable(spec, monkeypatch):
    monkeypatch.delenv(FILE_SOURCES_ROOT, raising=False)
    with pytest.raises(InvalidInput) as refused:
        spec.parse_config({"path": "/data/shop.db"})
    assert refused.value.field == "configuration.path"
    assert f"{FILE_SOURCES_ROOT} is not set on this installation" in refused.value.detail


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("outside", ["../shop.db", "/etc/passwd", "link/shop.db", ".", "a/../../shop.db"])
def test_a_path_outside_the_root_is_invalid_input_on_the_path(spec, root, outside, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")  # inside by name, outside once followed
    with pytest.raises(InvalidInput) as refused:
        spec.parse_config({"path": outside})
    assert refused.value.field == "configuration.path"  # the API answers 422
    assert f"under {root} ({FILE_SOURCES_ROOT}), symlinks followed" in refused.value.detail


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_a_path_under_the_root_is_kept_as_written_and_nothing_is_dialled(spec, root):
    (root / "team").mkdir()
    assert spec.parse_config({"path": "team/shop.db"}).path == "team/shop.db"  # relative to the root
    config = spec.parse_config({"path": str(root / "team" / "shop.db")})
    assert spec.endpoints(config) == []
    assert spec.identity_fields == ("path",) and spec.secret_fields == frozenset()
    assert spec.changed_identity({"path": "team/shop.db"}, config) == ["configuration.path"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
async def test_the_rule_is_checked_again_when_the_file_is_opened(spec, root, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (root / "current").symlink_to(root)
    source = plugin(spec, "current/shop.db")  # valid now
    (root / "current").unlink()
    (root / "current").symlink_to(tmp_path / "elsewhere")  # and then pointed elsewhere
    with pytest.raises(SourceError, match=r"Refused to open 'current/shop\.db': path must be a file under"):
        await crawl_all(source)

    valid = plugin(spec, "shop.db")
    monkeypatch.delenv(FILE_SOURCES_ROOT)  # the connector's rule, at the time it runs
    with pytest.raises(SourceError, match=f"{FILE_SOURCES_ROOT} is not set"):
        await crawl_all(valid)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
async def test_a_missing_file_or_one_of_another_kind_fails_with_the_path(spec, root):
    with pytest.raises(SourceError, match=f"No {'SQLite' if spec is SQLITE else 'DuckDB'} database file at {root}"):
        await crawl_all(plugin(spec, "missing.db"))
    (root / "notes.txt").write_text("not a database\n" * 100)
    with pytest.raises(SourceError, match=str(root / "notes.txt")):
        await crawl_all(plugin(spec, "notes.txt"))


# -- SQLite --

SQLITE_SHOP = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, region TEXT, code TEXT, untyped);
CREATE UNIQUE INDEX customers_email ON customers (email);
CREATE UNIQUE INDEX customers_region_code ON customers (region, code);
CREATE UNIQUE INDEX customers_code_when ON customers (code) WHERE code IS NOT NULL;
CREATE UNIQUE INDEX customers_lower ON customers (lower(email));
CREATE TABLE lines (order_id INTEGER NOT NULL, line INTEGER NOT NULL, customer INTEGER REFERENCES customers,
  total REAL DEFAULT 0, doubled REAL GENERATED ALWAYS AS (total * 2), PRIMARY KEY (line, order_id)) WITHOUT ROWID;
CREATE TABLE gone (x);
CREATE VIEW broken AS SELECT x FROM gone;
DROP TABLE gone;
CREATE VIEW totals AS SELECT customer, sum(total) AS total FROM lines GROUP BY customer;
CREATE VIRTUAL TABLE notes USING fts5(body);
"""


async def test_sqlite_reads_keys_generated_columns_views_and_virtual_tables(root):
    source = plugin(SQLITE, sqlite_file(root / "shop.sqlite", SQLITE_SHOP))
    assets = await crawl_all(source)
    customers = assets["main/customers"]["attributes"]
    assert customers["primaryKey"] == ["id"]
    assert sorted(customers["uniqueKeys"]) == [["email"], ["region", "code"]]  # no partial, no expression index
    assert assets["main/customers/id"]["attributes"]["nullable"] is False  # the rowid, never NULL
    assert assets["main/customers/untyped"]["attributes"]["dataType"] == ""  # SQLite allows no declared type
    lines = assets["main/lines"]["attributes"]
    assert lines["primaryKey"] == ["line", "order_id"]
    [fk] = lines["foreignKeys"]  # REFERENCES customers: its primary key
    assert fk == {"name": None, "columns": ["customer"], "references": {"schema": "main", "table": "customers",
                                                                         "columns": ["id"]}}  # fmt: skip
    assert assets["main/lines/total"]["attributes"]["default"] == "0"
    assert assets["main/lines/doubled"]["attributes"]["generated"] is True
    assert assets["main/totals"]["kind"] == "view" and "sum(total)" in assets["main/totals"]["attributes"]["definition"]
    assert assets["main/totals/total"]["parent_key"] == "main/totals"
    assert assets["main/notes"]["attributes"]["virtual"] is True and "main/notes/body" in assets
    # A view over a dropped table is catalogued without columns, and said so.
    assert assets["main/broken"]["kind"] == "view" and not any(k.startswith("main/broken/") for k in assets)
    assert any("view broken: its columns cannot be read" in w for w in source.report.warnings)


async def test_sqlite_files_are_opened_read_only(root):
    path = sqlite_file(root / "shop.sqlite", SQLITE_SHOP)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    await crawl_all(plugin(SQLITE, path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in root.iterdir()) == ["shop.sqlite"]  # no journal, no WAL left behind


async def test_cancelling_a_sqlite_crawl_stops_the_running_statement(root, monkeypatch):
    # A statement that never ends unless stopped, where the crawl reads unique keys.
    endless = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT max(i) FROM r"
    monkeypatch.setattr(sqlite_source, "UNIQUE_KEYS_SQL", endless)
    source = plugin(SQLITE, sqlite_file(root / "shop.sqlite", SQLITE_SHOP))
    crawl = source.crawl()
    await anext(crawl)  # the schema; the next batch waits for the endless statement
    stuck = asyncio.ensure_future(anext(crawl))
    done, _ = await asyncio.wait({stuck}, timeout=0.5)
    assert not done
    stuck.cancel()
    # close() returns once the connection closed, which waits for the statement to stop
    closed, _ = await asyncio.wait({asyncio.ensure_future(source.close())}, timeout=2)
    assert closed, "the statement was not stopped"


# -- DuckDB --

DUCKDB_SHOP = """
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (id INTEGER, region VARCHAR, code VARCHAR, profile STRUCT(name VARCHAR, age INTEGER),
  prefs MAP(VARCHAR, VARCHAR), seen TIMESTAMP WITH TIME ZONE, doubled INTEGER GENERATED ALWAYS AS (id * 2),
  status VARCHAR DEFAULT 'new', PRIMARY KEY (region, id), UNIQUE (region, code));
COMMENT ON TABLE crm.accounts IS 'Who pays';
COMMENT ON COLUMN crm.accounts.code IS 'Their own code';
CREATE VIEW crm.active AS SELECT id, region FROM crm.accounts WHERE status <> 'closed';
COMMENT ON VIEW crm.active IS 'Open accounts';
"""


async def test_duckdb_reads_its_catalog_comments_nested_types_and_composite_keys(root):
    assets = await crawl_all(plugin(DUCKDB, duckdb_file(root / "ledger.duckdb", DUCKDB_SHOP)))
    assert assets["ledger"]["kind"] == "database" and assets["ledger"]["parent_key"] == ""
    assert {k for k, a in assets.items() if a["kind"] == "schema"} == {"ledger/main", "ledger/crm"}
    accounts = assets["ledger/crm/accounts"]["attributes"]
    assert (accounts["comment"], accounts["primaryKey"], accounts["uniqueKeys"]) == (
        "Who pays",
        ["region", "id"],
        [["region", "code"]],
    )
    columns = {
        k.rsplit("/", 1)[1]: a["attributes"] for k, a in assets.items() if a["parent_key"] == "ledger/crm/accounts"
    }
    assert (columns["profile"]["dataType"], columns["profile"]["normalizedType"]) == (
        'STRUCT("name" VARCHAR, age INTEGER)',
        "struct",
    )
    assert columns["prefs"]["normalizedType"] == "map" and columns["seen"]["normalizedType"] == "timestamp_tz"
    assert columns["code"]["comment"] == "Their own code"
    assert columns["doubled"]["generated"] is True and columns["status"]["default"] == "'new'"
    assert columns["id"]["primaryKey"] is True and columns["id"]["nullable"] is False
    active = assets["ledger/crm/active"]
    assert active["kind"] == "view" and active["attributes"]["comment"] == "Open accounts"
    assert "WHERE (status != 'closed')" in active["attributes"]["definition"]  # as DuckDB stores it


async def test_duckdb_files_are_opened_read_only(root):
    path = duckdb_file(root / "ledger.duckdb", DUCKDB_SHOP)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    await crawl_all(plugin(DUCKDB, path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in root.iterdir()) == ["ledger.duckdb"]


async def test_cancelling_a_duckdb_crawl_interrupts_the_running_query(root, monkeypatch):
    # Minutes of work where the crawl reads columns, unless interrupted.
    monkeypatch.setattr(duckdb_source, "COLUMNS_SQL", "SELECT count(*) FROM range(1000000000000)")
    source = plugin(DUCKDB, duckdb_file(root / "ledger.duckdb", DUCKDB_SHOP))
    assert isinstance(source, DuckdbSource)
    crawl = source.crawl()
    await anext(crawl)  # the catalog and schemas
    await anext(crawl)  # the tables and views; the next call runs the endless query
    stuck = asyncio.ensure_future(anext(crawl))

    async def query_running() -> bool:
        return source._lock.locked()  # a call holds the connection in its worker thread

    await eventually(query_running, timeout=10, interval=0.01)
    stuck.cancel()
    started = time.monotonic()
    await source.close()  # returns once the connection closed, which waits for the interrupted query
    assert time.monotonic() - started < 2
    assert not source._lock.locked()
