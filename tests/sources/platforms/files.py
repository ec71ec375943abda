"""SQLite and DuckDB in the contract: the fixture as database files under FILE_SOURCES_ROOT (no engine to start).

What each lacks, it leaves out: SQLite has one schema (`main`, so the fixture's tables all live there), no comments,
no names of foreign keys and no nested type (tags are JSON); DuckDB keeps no comment on a schema (COMMENT ON SCHEMA
is not implemented), no length of a VARCHAR and its own names of foreign keys, and has `main` in every catalog.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from services.core.sources.files import DUCKDB, FILE_SOURCES_ROOT, SQLITE
from tests.sources.contract import Expected


def files_root() -> Path:
    """FILE_SOURCES_ROOT as `make test` sets it, else a directory of this session's own (set for the process: the
    plug-ins read the variable when they validate and open a path)."""
    if not os.environ.get(FILE_SOURCES_ROOT):
        os.environ[FILE_SOURCES_ROOT] = tempfile.mkdtemp(prefix="file-sources-")
    root = Path(os.environ[FILE_SOURCES_ROOT]) / "contract"
    root.mkdir(parents=True, exist_ok=True)
    return root


SQLITE_FIXTURE = """
CREATE TABLE customers (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, tags JSON);
CREATE TABLE orders (id INTEGER NOT NULL PRIMARY KEY, customer_id INTEGER, amount DECIMAL(10,2), created_at TIMESTAMP,
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers(id));
CREATE VIEW big_orders AS SELECT id, customer_id, amount FROM orders WHERE amount > 100;
CREATE TABLE employees (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(100));
"""
CHANGE = "DROP TABLE {hr}employees; ALTER TABLE {sales}orders ADD COLUMN note VARCHAR(50);"


def _columns(table: str, *names: str) -> dict[str, str]:
    return {table: "view" if table.endswith("big_orders") else "table"} | {f"{table}/{n}": "column" for n in names}


def _fixture_keys(sales: str, hr: str) -> dict[str, str]:
    return (
        _columns(f"{sales}/customers", "id", "email", "tags")
        | _columns(f"{sales}/orders", "id", "customer_id", "amount", "created_at")
        | _columns(f"{sales}/big_orders", "id", "customer_id", "amount")
        | _columns(f"{hr}/employees", "id", "name")
    )


class SqlitePlatform:
    name = "sqlite"
    spec = SQLITE
    expected = Expected(
        assets={"main": "schema"} | _fixture_keys("main", "main"),
        attributes={
            "main/customers": {"comment": None, "primaryKey": ["id"], "uniqueKeys": [["email"]]},
            "main/customers/email": {"dataType": "VARCHAR(200)", "normalizedType": "string", "nullable": False},
            "main/customers/tags": {"dataType": "JSON", "normalizedType": "json", "nullable": True},
            "main/orders": {
                "foreignKeys": [
                    {
                        "name": None,
                        "columns": ["customer_id"],
                        "references": {"schema": "main", "table": "customers", "columns": ["id"]},
                    }
                ]
            },
            "main/orders/amount": {"dataType": "DECIMAL(10,2)", "normalizedType": "decimal"},
            "main/orders/created_at": {"normalizedType": "timestamp"},
            "main/big_orders": {"type": "view", "primaryKey": []},
        },
    )

    def unavailable(self) -> str | None:
        return None  # the sqlite3 library is part of Python

    @property
    def path(self) -> Path:
        return files_root() / "shop.sqlite"

    async def create_fixture(self) -> None:
        self.path.unlink(missing_ok=True)
        with sqlite3.connect(self.path) as conn:
            conn.executescript(SQLITE_FIXTURE)
        conn.close()

    async def change_fixture(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.executescript(CHANGE.format(hr="", sales=""))
        conn.close()

    def configuration(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def credentials(self) -> dict[str, Any]:
        return {}

    def bad_credentials(self) -> dict[str, Any] | None:
        return None


DUCKDB_FIXTURE = """
CREATE SCHEMA sales;
CREATE SCHEMA hr;
CREATE TABLE sales.customers (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, tags VARCHAR[]);
CREATE TABLE sales.orders (id INTEGER NOT NULL PRIMARY KEY, customer_id INTEGER, amount DECIMAL(10,2),
  created_at TIMESTAMP, CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES sales.customers(id));
CREATE VIEW sales.big_orders AS SELECT id, customer_id, amount FROM sales.orders WHERE amount > 100;
CREATE TABLE hr.employees (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(100));
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.email IS 'Where receipts go';
"""


class DuckdbPlatform:
    name = "duckdb"
    spec = DUCKDB
    expected = Expected(
        assets={"shop": "database", "shop/main": "schema", "shop/sales": "schema", "shop/hr": "schema"}
        | _fixture_keys("shop/sales", "shop/hr"),
        attributes={
            "shop": {"nativeType": "database"},
            "shop/sales/customers": {"comment": "People who buy", "primaryKey": ["id"], "uniqueKeys": [["email"]]},
            "shop/sales/customers/email": {"comment": "Where receipts go", "dataType": "VARCHAR", "nullable": False},
            "shop/sales/customers/tags": {"dataType": "VARCHAR[]", "normalizedType": "array", "nullable": True},
            "shop/sales/orders": {
                "foreignKeys": [
                    {
                        "name": "orders_customer_id_id_fkey",
                        "columns": ["customer_id"],
                        "references": {"schema": "sales", "table": "customers", "columns": ["id"]},
                    }
                ]
            },
            "shop/sales/orders/amount": {"dataType": "DECIMAL(10,2)", "normalizedType": "decimal"},
            "shop/sales/orders/id": {"primaryKey": True, "nullable": False},
            "shop/sales/big_orders": {"type": "view", "primaryKey": []},
        },
    )

    def unavailable(self) -> str | None:
        return None  # the duckdb package is the engine

    @property
    def path(self) -> Path:
        return files_root() / "shop.duckdb"

    async def create_fixture(self) -> None:
        for stale in (self.path, self.path.with_name(f"{self.path.name}.wal")):
            stale.unlink(missing_ok=True)
        with duckdb.connect(str(self.path)) as conn:
            conn.execute(DUCKDB_FIXTURE)

    async def change_fixture(self) -> None:
        with duckdb.connect(str(self.path)) as conn:
            conn.execute(CHANGE.format(hr="hr.", sales="sales."))

    def configuration(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def credentials(self) -> dict[str, Any]:
        return {}

    def bad_credentials(self) -> dict[str, Any] | None:
        return None


PLATFORMS = [SqlitePlatform(), DuckdbPlatform()]
