"""Snowflake on its emulator (infra/engines/fakesnow.sh): the fixture in database CONTRACT, created and crawled with
snowflake-connector-python over Snowflake's HTTP protocol, the crawl configured with that one database.

Unquoted names are upper case, as in Snowflake. What the emulator (fakesnow 0.12.1) lacks, the expected set leaves
out: schema comments are not kept; an ARRAY column reads as VARIANT; SHOW ... KEYS IN DATABASE is not implemented, so
a crawl of one database has no keys (the crawl of every database, SHOW ... KEYS IN ACCOUNT, reads primary keys: see
tests/integration/test_snowflake_source.py); column comments are dropped (inline, ALTER ... COMMENT and COMMENT ON).
"""

from __future__ import annotations

import os
from typing import Any

from snowflake.connector.aio import DictCursor, connect

from services.core.sources.snowflake import SNOWFLAKE
from tests.sources.contract import Expected, listening

PORT_VARIABLE, DEFAULT_PORT = "FAKESNOW_PORT", 18085
DATABASE = "CONTRACT"

FIXTURE_SQL = (
    f"CREATE DATABASE IF NOT EXISTS {DATABASE}",  # fakesnow has no DROP DATABASE nor CREATE OR REPLACE DATABASE
    f"DROP SCHEMA IF EXISTS {DATABASE}.SALES CASCADE",
    f"DROP SCHEMA IF EXISTS {DATABASE}.HR CASCADE",
    f"CREATE SCHEMA {DATABASE}.SALES",
    f"CREATE TABLE {DATABASE}.SALES.CUSTOMERS (id integer NOT NULL PRIMARY KEY, "
    "email varchar(200) NOT NULL UNIQUE COMMENT 'Where receipts go', tags array) COMMENT = 'People who buy'",
    f"CREATE TABLE {DATABASE}.SALES.ORDERS (id integer NOT NULL PRIMARY KEY, customer_id integer, "
    "amount decimal(10,2), created_at timestamp, "
    f"CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES {DATABASE}.SALES.CUSTOMERS(id))",
    f"CREATE VIEW {DATABASE}.SALES.BIG_ORDERS AS "
    f"SELECT id, customer_id, amount FROM {DATABASE}.SALES.ORDERS WHERE amount > 100",
    f"CREATE SCHEMA {DATABASE}.HR COMMENT = 'People who work here'",
    f"CREATE TABLE {DATABASE}.HR.EMPLOYEES (id integer NOT NULL PRIMARY KEY, name varchar(100))",
)
CHANGE_SQL = (
    f"DROP TABLE {DATABASE}.HR.EMPLOYEES",
    f"ALTER TABLE {DATABASE}.SALES.ORDERS ADD COLUMN note varchar(50)",
)


def fakesnow_port() -> int:
    return listening(PORT_VARIABLE, DEFAULT_PORT)[0]


def fakesnow_password() -> str:
    return os.environ.get("FAKESNOW_PASSWORD", "fakesnow-test")  # the one the engine script starts it with


async def execute(*statements: str) -> list[dict[str, Any]]:
    """Run `statements` in order on the emulator, through the connector the plug-in uses; the last one's rows."""
    connection = await connect(
        account="contract", user="fixture", password=fakesnow_password(), host="127.0.0.1", port=fakesnow_port(),
        protocol="http", enable_server_session_keep_alive_auto_detection=False,
    )  # fmt: skip
    try:
        cursor = connection.cursor(DictCursor)
        rows: list[dict[str, Any]] = []
        for statement in statements:
            await cursor.execute(statement)
            rows = await cursor.fetchall()
        return rows
    finally:
        await connection.close()


def _columns(table: str, kind: str, *names: str) -> dict[str, str]:
    return {table: kind} | {f"{table}/{name}": "column" for name in names}


class SnowflakePlatform:
    name = "snowflake"
    spec = SNOWFLAKE
    expected = Expected(
        assets={DATABASE: "database", f"{DATABASE}/SALES": "schema", f"{DATABASE}/HR": "schema"}
        | _columns(f"{DATABASE}/SALES/CUSTOMERS", "table", "ID", "EMAIL", "TAGS")
        | _columns(f"{DATABASE}/SALES/ORDERS", "table", "ID", "CUSTOMER_ID", "AMOUNT", "CREATED_AT")
        | _columns(f"{DATABASE}/SALES/BIG_ORDERS", "view", "ID", "CUSTOMER_ID", "AMOUNT")
        | _columns(f"{DATABASE}/HR/EMPLOYEES", "table", "ID", "NAME"),
        attributes={
            DATABASE: {"nativeType": "database"},
            f"{DATABASE}/HR": {"comment": None},  # fakesnow keeps no schema comment
            f"{DATABASE}/SALES/CUSTOMERS": {"comment": "People who buy", "type": "table", "transient": False},
            f"{DATABASE}/SALES/CUSTOMERS/EMAIL": {
                "dataType": "VARCHAR(200)", "normalizedType": "string", "nullable": False,
                "comment": None,  # fakesnow drops column comments
            },
            f"{DATABASE}/SALES/CUSTOMERS/TAGS": {"dataType": "VARIANT", "normalizedType": "json"},  # Snowflake: ARRAY
            f"{DATABASE}/SALES/ORDERS/ID": {"dataType": "NUMBER(38,0)", "normalizedType": "integer", "nullable": False},
            f"{DATABASE}/SALES/ORDERS/AMOUNT": {"dataType": "NUMBER(10,2)", "normalizedType": "decimal"},
            f"{DATABASE}/SALES/ORDERS/CREATED_AT": {"dataType": "TIMESTAMP_NTZ", "normalizedType": "timestamp"},
            f"{DATABASE}/SALES/BIG_ORDERS": {"type": "view", "primaryKey": [], "secure": False},
        },
    )  # fmt: skip

    def unavailable(self) -> str | None:
        return listening(PORT_VARIABLE, DEFAULT_PORT)[1]

    async def create_fixture(self) -> None:
        await execute(*FIXTURE_SQL)

    async def change_fixture(self) -> None:
        await execute(*CHANGE_SQL)

    def configuration(self) -> dict[str, Any]:
        return {"account": "contract", "username": "crawler", "database": DATABASE.lower(), "host": "127.0.0.1",
                "port": fakesnow_port(), "protocol": "http"}  # fmt: skip

    def credentials(self) -> dict[str, Any]:
        return {"password": fakesnow_password()}

    def bad_credentials(self) -> dict[str, Any] | None:
        return {"password": "definitely-not-the-fakesnow-password"}


PLATFORMS = [SnowflakePlatform()]
