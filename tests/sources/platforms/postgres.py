"""PostgreSQL in the contract: the suite's own server (DATABASE_URL), a database of its own."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

import asyncpg

from services.core.sources.postgres import POSTGRES
from tests.sources.contract import Expected
from tests.support import recreate_database

DATABASE = "contract_pg"

FIXTURE = """
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'Money in';
CREATE TABLE sales.customers (id integer PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, tags varchar[]);
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.email IS 'Where receipts go';
CREATE TABLE sales.orders (
    id integer PRIMARY KEY,
    customer_id integer CONSTRAINT fk_orders_customer REFERENCES sales.customers (id),
    amount decimal(10, 2),
    created_at timestamp
);
CREATE VIEW sales.big_orders AS SELECT id, customer_id, amount FROM sales.orders WHERE amount > 100;
CREATE SCHEMA hr;
COMMENT ON SCHEMA hr IS 'People who work here';
CREATE TABLE hr.employees (id integer PRIMARY KEY, name varchar(100));
"""
CHANGE = "DROP TABLE hr.employees; ALTER TABLE sales.orders ADD COLUMN note varchar(50);"

D = DATABASE
ASSETS = {
    D: "database",
    f"{D}/sales": "schema",
    f"{D}/sales/customers": "table",
    **{f"{D}/sales/customers/{c}": "column" for c in ("id", "email", "tags")},
    f"{D}/sales/orders": "table",
    **{f"{D}/sales/orders/{c}": "column" for c in ("id", "customer_id", "amount", "created_at")},
    f"{D}/sales/big_orders": "view",
    **{f"{D}/sales/big_orders/{c}": "column" for c in ("id", "customer_id", "amount")},
    f"{D}/hr": "schema",
    f"{D}/hr/employees": "table",
    **{f"{D}/hr/employees/{c}": "column" for c in ("id", "name")},
}
# fmt: off
ATTRIBUTES: dict[str, dict[str, Any]] = {
    D: {"nativeType": "database"},
    f"{D}/sales": {"comment": "Money in"},
    f"{D}/hr": {"comment": "People who work here"},
    f"{D}/sales/customers": {"comment": "People who buy", "primaryKey": ["id"], "uniqueKeys": [["email"]],
                             "foreignKeys": []},
    f"{D}/sales/customers/id": {"dataType": "integer", "normalizedType": "integer", "nullable": False,
                                "primaryKey": True, "ordinal": 1},
    f"{D}/sales/customers/email": {"dataType": "character varying(200)", "normalizedType": "string",
                                   "nullable": False, "comment": "Where receipts go"},
    f"{D}/sales/customers/tags": {"dataType": "character varying[]", "normalizedType": "array", "nullable": True},
    f"{D}/sales/orders": {"primaryKey": ["id"], "foreignKeys": [{
        "name": "fk_orders_customer", "columns": ["customer_id"],
        "references": {"schema": "sales", "table": "customers", "columns": ["id"]}}]},
    f"{D}/sales/orders/amount": {"dataType": "numeric(10,2)", "normalizedType": "decimal"},
    f"{D}/sales/orders/created_at": {"dataType": "timestamp without time zone", "normalizedType": "timestamp"},
    f"{D}/sales/big_orders": {"type": "view", "primaryKey": []},
}
# fmt: on


class Postgres:
    name = "postgres"
    spec = POSTGRES
    expected = Expected(ASSETS, ATTRIBUTES)

    def __init__(self) -> None:
        self._server = os.environ.get("DATABASE_URL", "postgresql://postgres:ingest@127.0.0.1:15433/ingestion_test")
        self._dsn = self._server.rsplit("/", 1)[0] + "/" + DATABASE

    def unavailable(self) -> str | None:
        return None if os.environ.get("DATABASE_URL") else "DATABASE_URL (the suite's PostgreSQL) is not set"

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create_fixture(self) -> None:
        await recreate_database(self._server, DATABASE)
        await self._execute(FIXTURE)

    async def change_fixture(self) -> None:
        await self._execute(CHANGE)

    def configuration(self) -> dict[str, Any]:
        url = urlparse(self._dsn)
        return {"host": url.hostname, "port": url.port, "database": DATABASE, "username": url.username,
                "sslmode": "disable", "includeSchemas": ["sales", "hr"]}  # fmt: skip

    def credentials(self) -> dict[str, Any]:
        return {"password": urlparse(self._dsn).password}

    def bad_credentials(self) -> dict[str, Any] | None:
        return {"password": "not-the-password"}


PLATFORMS = [Postgres()]
