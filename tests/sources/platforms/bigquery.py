"""BigQuery on its emulator (infra/engines/bqemulator.sh): the fixture in project contract-bq, created through
BigQuery's REST API with google-cloud-bigquery (the client the plug-in uses), crawled unauthenticated at the
emulator's endpoint.

The fixture is made with REST calls rather than DDL (but for the view: one made by REST has no columns in the
emulator): bqemulator 1.4.0 drops column and dataset descriptions given in DDL OPTIONS and cannot parse
`PRIMARY KEY ... NOT ENFORCED`. What it lacks, the expected set leaves out: STRING(n)
and NUMERIC(p, s) lose their parameters; tableConstraints are not kept and INFORMATION_SCHEMA has no
TABLE_CONSTRAINTS / KEY_COLUMN_USAGE (no keys), nor COLUMN_FIELD_PATHS (no column descriptions). BigQuery itself has
no unique constraints. The nested type is the REPEATED `tags` column, ARRAY<STRING>.
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery import SchemaField
from google.cloud.bigquery.table import ColumnReference, ForeignKey, PrimaryKey, TableConstraints, TableReference

from services.core.sources.bigquery import BIGQUERY
from tests.sources.contract import Expected, listening

PORT_VARIABLE, DEFAULT_PORT = "BQEMULATOR_PORT", 19050
PROJECT = "contract-bq"


def emulator_endpoint() -> str:
    return f"http://127.0.0.1:{listening(PORT_VARIABLE, DEFAULT_PORT)[0]}"


def emulator_client(project: str) -> bigquery.Client:
    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=emulator_endpoint()))  # fmt: skip


def reset_project(client: bigquery.Client) -> None:
    """Remove every dataset of the client's project: what a test crawls is only what it made."""
    for dataset in list(client.list_datasets()):
        client.delete_dataset(dataset.reference, delete_contents=True, not_found_ok=True)


def create_dataset(client: bigquery.Client, name: str, description: str | None = None) -> None:
    dataset = bigquery.Dataset(f"{client.project}.{name}")
    dataset.description = description
    client.create_dataset(dataset)


def create_table(
    client: bigquery.Client, name: str, fields: list[SchemaField], description: str | None = None,
    constraints: TableConstraints | None = None,
) -> None:  # fmt: skip
    table = bigquery.Table(f"{client.project}.{name}", schema=fields)
    table.description = description
    if constraints is not None:
        table.table_constraints = constraints
    client.create_table(table)


def create_view(client: bigquery.Client, name: str, query: str) -> None:
    # DDL: a view made by tables.insert has no schema in the emulator, so no columns
    client.query(f"CREATE VIEW `{client.project}.{name}` AS {query}").result()


BIG_ORDERS = f"SELECT id, customer_id, amount FROM `{PROJECT}.sales.orders` WHERE amount > 100"


def create_contract_fixture(client: bigquery.Client) -> None:
    reset_project(client)
    create_dataset(client, "sales")
    create_table(client, "sales.customers", [
        SchemaField("id", "INT64", mode="REQUIRED"),
        SchemaField("email", "STRING", mode="REQUIRED", max_length=200, description="Where receipts go"),
        SchemaField("tags", "STRING", mode="REPEATED"),
    ], "People who buy", TableConstraints(primary_key=PrimaryKey(["id"]), foreign_keys=None))  # fmt: skip
    customers = TableReference.from_string(f"{PROJECT}.sales.customers")
    create_table(client, "sales.orders", [
        SchemaField("id", "INT64", mode="REQUIRED"),
        SchemaField("customer_id", "INT64"),
        SchemaField("amount", "NUMERIC", precision=10, scale=2),
        SchemaField("created_at", "TIMESTAMP"),
    ], constraints=TableConstraints(primary_key=PrimaryKey(["id"]), foreign_keys=[ForeignKey(
        "fk_orders_customer", customers, [ColumnReference("customer_id", "id")])]))  # fmt: skip
    create_view(client, "sales.big_orders", BIG_ORDERS)
    create_dataset(client, "hr", "People who work here")
    create_table(client, "hr.employees", [
        SchemaField("id", "INT64", mode="REQUIRED"), SchemaField("name", "STRING", max_length=100),
    ], constraints=TableConstraints(primary_key=PrimaryKey(["id"]), foreign_keys=None))  # fmt: skip


def add_column(client: bigquery.Client, table_name: str, field: SchemaField) -> None:
    # tables.patch: the emulator runs ALTER TABLE ... ADD COLUMN without recording the column in its catalog
    table = client.get_table(f"{client.project}.{table_name}")
    table.schema = [*table.schema, field]
    client.update_table(table, ["schema"])


def change_contract_fixture(client: bigquery.Client) -> None:
    client.delete_table(f"{PROJECT}.hr.employees")
    add_column(client, "sales.orders", SchemaField("note", "STRING", max_length=50))


def _columns(table: str, kind: str, *names: str) -> dict[str, str]:
    return {table: kind} | {f"{table}/{name}": "column" for name in names}


class BigQueryPlatform:
    name = "bigquery"
    spec = BIGQUERY
    expected = Expected(
        assets={PROJECT: "database", f"{PROJECT}/sales": "schema", f"{PROJECT}/hr": "schema"}
        | _columns(f"{PROJECT}/sales/customers", "table", "id", "email", "tags")
        | _columns(f"{PROJECT}/sales/orders", "table", "id", "customer_id", "amount", "created_at")
        | _columns(f"{PROJECT}/sales/big_orders", "view", "id", "customer_id", "amount")
        | _columns(f"{PROJECT}/hr/employees", "table", "id", "name"),
        attributes={
            PROJECT: {"nativeType": "project"},
            f"{PROJECT}/hr": {"comment": "People who work here", "location": "US"},
            f"{PROJECT}/sales": {"comment": None},
            f"{PROJECT}/sales/customers": {
                "comment": "People who buy", "type": "table", "nativeType": "BASE TABLE",
                "primaryKey": [], "uniqueKeys": [],  # the emulator keeps no constraints; BigQuery has no unique keys
            },
            f"{PROJECT}/sales/customers/id": {"dataType": "INT64", "normalizedType": "integer", "nullable": False},
            f"{PROJECT}/sales/customers/email": {
                "dataType": "STRING",  # BigQuery: STRING(200)
                "normalizedType": "string", "nullable": False,
                "comment": None,  # BigQuery: 'Where receipts go', from COLUMN_FIELD_PATHS
            },
            f"{PROJECT}/sales/customers/tags": {"dataType": "ARRAY<STRING>", "normalizedType": "array", "ordinal": 3},
            f"{PROJECT}/sales/orders": {"foreignKeys": []},  # BigQuery: fk_orders_customer
            f"{PROJECT}/sales/orders/amount": {"dataType": "NUMERIC", "normalizedType": "decimal"},  # NUMERIC(10, 2)
            f"{PROJECT}/sales/orders/created_at": {"dataType": "TIMESTAMP", "normalizedType": "timestamp"},
            f"{PROJECT}/sales/big_orders": {"type": "view", "nativeType": "VIEW", "definition": BIG_ORDERS},
        },
    )  # fmt: skip

    def unavailable(self) -> str | None:
        return listening(PORT_VARIABLE, DEFAULT_PORT)[1]

    async def create_fixture(self) -> None:
        await asyncio.to_thread(create_contract_fixture, emulator_client(PROJECT))

    async def change_fixture(self) -> None:
        await asyncio.to_thread(change_contract_fixture, emulator_client(PROJECT))

    def configuration(self) -> dict[str, Any]:
        return {"projectId": PROJECT, "endpoint": emulator_endpoint()}

    def credentials(self) -> dict[str, Any]:
        return {}  # the emulator takes unauthenticated requests

    def bad_credentials(self) -> dict[str, Any] | None:
        return None  # the emulator accepts any caller: there is no secret it could refuse


PLATFORMS = [BigQueryPlatform()]
