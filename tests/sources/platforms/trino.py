"""Trino on the test engine (infra/engines/trino.sh): the fixture in its `memory` catalog, crawled over plain HTTP.

The memory connector has no primary, foreign or unique keys (Trino's metadata has none) and Trino has no schema
comments; it has NOT NULL, table, view and column comments, views and `array(varchar)`. Over plain HTTP Trino
authenticates no one (the user is only named), so there is no secret to get wrong here; the HTTPS listener with
password authentication is tested in tests/integration/test_trino_source.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import trino.dbapi

from services.core.sources.trino import TRINO
from tests.sources.contract import Expected, listening

PORT_VARIABLE, DEFAULT_PORT = "TRINO_PORT", 18080
CATALOG = "memory"
USER = "ingest"

FIXTURE_SQL = (
    "CREATE SCHEMA memory.sales",
    "CREATE TABLE memory.sales.customers (id integer NOT NULL, "
    "email varchar(200) NOT NULL COMMENT 'Where receipts go', tags array(varchar)) COMMENT 'People who buy'",
    "CREATE TABLE memory.sales.orders (id integer NOT NULL, customer_id integer, amount decimal(10,2), "
    "created_at timestamp)",
    "CREATE VIEW memory.sales.big_orders AS SELECT id, customer_id, amount FROM memory.sales.orders WHERE amount > 100",
    "CREATE SCHEMA memory.hr",
    "CREATE TABLE memory.hr.employees (id integer NOT NULL, name varchar(100))",
)
CHANGE_SQL = (
    "DROP TABLE memory.hr.employees",
    "ALTER TABLE memory.sales.orders ADD COLUMN note varchar(50)",
)


def trino_port() -> int:
    return listening(PORT_VARIABLE, DEFAULT_PORT)[0]


def execute(*statements: str, catalog: str | None = None) -> list[list[Any]]:
    """Run `statements` in order on the test engine (as the fixture's user, over HTTP); the last one's rows."""
    connection = trino.dbapi.connect(host="127.0.0.1", port=trino_port(), user=USER, catalog=catalog)
    try:
        cursor = connection.cursor()
        rows: list[list[Any]] = []
        for statement in statements:
            cursor.execute(statement)
            rows = cursor.fetchall()
        return rows
    finally:
        connection.close()


def reset_catalog(catalog: str) -> None:
    """Drop every schema of a memory catalog (the memory connector drops their tables and views with them)."""
    schemas = execute(f"SELECT schema_name FROM {catalog}.information_schema.schemata "
                      "WHERE schema_name <> 'information_schema'")  # fmt: skip
    execute(*(f'DROP SCHEMA {catalog}."{name}" CASCADE' for (name,) in schemas))


def _column(data_type: str, normalized: str, nullable: bool, comment: str | None = None) -> dict[str, Any]:
    return {"dataType": data_type, "normalizedType": normalized, "nullable": nullable, "comment": comment,
            "primaryKey": False}  # fmt: skip


class TrinoPlatform:
    name = "trino"
    spec = TRINO
    expected = Expected(
        assets={
            "memory": "database",
            "memory/sales": "schema",
            "memory/sales/customers": "table",
            "memory/sales/customers/id": "column",
            "memory/sales/customers/email": "column",
            "memory/sales/customers/tags": "column",
            "memory/sales/orders": "table",
            "memory/sales/orders/id": "column",
            "memory/sales/orders/customer_id": "column",
            "memory/sales/orders/amount": "column",
            "memory/sales/orders/created_at": "column",
            "memory/sales/big_orders": "view",
            "memory/sales/big_orders/id": "column",
            "memory/sales/big_orders/customer_id": "column",
            "memory/sales/big_orders/amount": "column",
            "memory/hr": "schema",
            "memory/hr/employees": "table",
            "memory/hr/employees/id": "column",
            "memory/hr/employees/name": "column",
        },
        attributes={
            "memory": {"nativeType": "catalog", "connector": "memory"},
            "memory/hr": {"comment": None},  # Trino has no schema comments
            # No keys: Trino's metadata has no primary, unique or foreign keys.
            "memory/sales/customers": {"comment": "People who buy", "primaryKey": [], "uniqueKeys": []},
            "memory/sales/orders": {"comment": None, "primaryKey": [], "foreignKeys": []},
            "memory/sales/customers/id": _column("integer", "integer", False),
            "memory/sales/customers/email": _column("varchar(200)", "string", False, "Where receipts go"),
            "memory/sales/customers/tags": _column("array(varchar)", "array", True),
            "memory/sales/orders/amount": _column("decimal(10,2)", "decimal", True),
            "memory/sales/orders/created_at": _column("timestamp(3)", "timestamp", True),  # Trino's `timestamp`
            "memory/hr/employees/name": _column("varchar(100)", "string", True),
        },
    )

    def unavailable(self) -> str | None:
        return listening(PORT_VARIABLE, DEFAULT_PORT)[1]

    async def create_fixture(self) -> None:
        await asyncio.to_thread(reset_catalog, CATALOG)
        await asyncio.to_thread(execute, *FIXTURE_SQL)

    async def change_fixture(self) -> None:
        await asyncio.to_thread(execute, *CHANGE_SQL)

    def configuration(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": trino_port(), "https": False, "username": USER, "catalog": CATALOG}

    def credentials(self) -> dict[str, Any]:
        return {}

    def bad_credentials(self) -> dict[str, Any] | None:
        return None  # plain HTTP: Trino authenticates no one there (passwords go over HTTPS only)


PLATFORMS = [TrinoPlatform()]
