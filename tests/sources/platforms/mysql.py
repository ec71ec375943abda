"""MySQL and MariaDB in the contract: both specs against the real MariaDB server infra/engines/mariadb.sh runs.

Each platform keeps the fixture in databases of its own (`ct_<platform>_sales`, `ct_<platform>_hr`) and crawls only
those (includeSchemas), so the two never see each other's. A MySQL/MariaDB database plays the schema's role: there
is no container level. MariaDB has no array type: `tags` is a JSON column (LONGTEXT checked by json_valid, which
the plug-in reports as json).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import aiomysql

from services.core.sources import SourceSpec
from services.core.sources.mysql import MARIADB, MYSQL
from tests.sources.contract import Expected, listening

PORT_VARIABLE, DEFAULT_PORT = "MARIADB_PORT", 13306


def engine_port() -> int:
    return int(os.environ.get(PORT_VARIABLE, DEFAULT_PORT))


def engine_password() -> str:
    return os.environ.get("MARIADB_PASSWORD", "ingest")


async def root_connection() -> Any:
    """A connection as the engine's root user (the fixtures' owner)."""
    return await aiomysql.connect(
        host="127.0.0.1", port=engine_port(), user="root", password=engine_password(), autocommit=True,
        init_command="SET SESSION sql_notes = 0",  # no warning for DROP ... IF EXISTS of what is not there
    )  # fmt: skip


async def run_sql(*statements: str) -> list[tuple[Any, ...]]:
    """Run statements as root; the rows of the last one."""
    conn = await root_connection()
    try:
        cursor = await conn.cursor()
        for statement in statements:
            await cursor.execute(statement)
        return list(await cursor.fetchall())
    finally:
        conn.close()


def _expected(prefix: str) -> Expected:
    sales, hr = f"{prefix}_sales", f"{prefix}_hr"
    tables = {
        f"{sales}/customers": ("table", ["id", "email", "tags"]),
        f"{sales}/orders": ("table", ["id", "customer_id", "amount", "created_at"]),
        f"{sales}/big_orders": ("view", ["id", "customer_id", "amount"]),
        f"{hr}/employees": ("table", ["id", "name"]),
    }
    assets = {sales: "schema", hr: "schema"}
    for key, (kind, columns) in tables.items():
        assets[key] = kind
        assets.update({f"{key}/{column}": "column" for column in columns})
    return Expected(
        assets=assets,
        attributes={
            hr: {"comment": "People who work here"},
            f"{sales}/customers": {
                "comment": "People who buy",
                "primaryKey": ["id"],
                "uniqueKeys": [["email"]],
                "engine": "InnoDB",
            },
            f"{sales}/customers/id": {  # MariaDB spells int as int(11); MySQL 8 as int
                "dataType": "int(11)",
                "normalizedType": "integer",
                "nullable": False,
                "primaryKey": True,
            },
            f"{sales}/customers/email": {
                "dataType": "varchar(200)",
                "normalizedType": "string",
                "nullable": False,
                "comment": "Where receipts go",
            },
            # No array type: `tags` is JSON (MariaDB stores LONGTEXT CHECK (json_valid(`tags`)); reported as json).
            f"{sales}/customers/tags": {"dataType": "json", "normalizedType": "json", "nullable": True},
            f"{sales}/orders": {
                "primaryKey": ["id"],
                "foreignKeys": [
                    {
                        "name": "fk_orders_customer",
                        "columns": ["customer_id"],
                        "references": {"schema": sales, "table": "customers", "columns": ["id"]},
                    }
                ],
            },
            f"{sales}/orders/amount": {"dataType": "decimal(10,2)", "normalizedType": "decimal"},
            f"{sales}/orders/created_at": {"dataType": "timestamp", "normalizedType": "timestamp"},
            f"{sales}/big_orders": {
                "comment": None,
                "primaryKey": [],
                "definition": f"select `{sales}`.`orders`.`id` AS `id`,`{sales}`.`orders`.`customer_id` AS "
                f"`customer_id`,`{sales}`.`orders`.`amount` AS `amount` from `{sales}`.`orders` where "
                f"`{sales}`.`orders`.`amount` > 100",
            },
            f"{hr}/employees/name": {"dataType": "varchar(100)", "nullable": True, "primaryKey": False},
        },
    )


@dataclass
class MySQLPlatform:
    name: str
    spec: SourceSpec[Any, Any]
    expected: Expected = field(init=False)

    def __post_init__(self) -> None:
        self.expected = _expected(self.prefix)

    @property
    def prefix(self) -> str:
        return f"ct_{self.name}"

    def unavailable(self) -> str | None:
        return listening(PORT_VARIABLE, DEFAULT_PORT)[1]

    async def create_fixture(self) -> None:
        sales, hr = f"{self.prefix}_sales", f"{self.prefix}_hr"
        await run_sql(
            f"DROP DATABASE IF EXISTS {sales}",
            f"DROP DATABASE IF EXISTS {hr}",
            f"CREATE DATABASE {sales}",
            f"CREATE DATABASE {hr} COMMENT 'People who work here'",
            f"""CREATE TABLE {sales}.customers (
                  id INT NOT NULL PRIMARY KEY,
                  email VARCHAR(200) NOT NULL UNIQUE COMMENT 'Where receipts go',
                  tags JSON
                ) COMMENT 'People who buy'""",
            f"""CREATE TABLE {sales}.orders (
                  id INT NOT NULL PRIMARY KEY,
                  customer_id INT,
                  amount DECIMAL(10,2),
                  created_at TIMESTAMP NULL,
                  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES {sales}.customers (id)
                )""",
            f"CREATE VIEW {sales}.big_orders AS SELECT id, customer_id, amount FROM {sales}.orders WHERE amount > 100",
            f"CREATE TABLE {hr}.employees (id INT NOT NULL PRIMARY KEY, name VARCHAR(100))",
        )

    async def change_fixture(self) -> None:
        await run_sql(
            f"DROP TABLE {self.prefix}_hr.employees",
            f"ALTER TABLE {self.prefix}_sales.orders ADD COLUMN note VARCHAR(50)",
        )

    def configuration(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": engine_port(), "username": "root", "includeSchemas": [f"{self.prefix}_*"]}

    def credentials(self) -> dict[str, Any]:
        return {"password": engine_password()}

    def bad_credentials(self) -> dict[str, Any] | None:
        return {"password": "not-the-mariadb-password-42"}


PLATFORMS = [MySQLPlatform("mysql", MYSQL), MySQLPlatform("mariadb", MARIADB)]
