"""AWS Glue in the contract: moto's server (infra/engines/moto.sh) with its IAM checks on, a region of its own.

moto accepts any request while its IAM checks are off, which would make a wrong secret pass. So the first use
turns them on (POST /moto-api/reset-auth): it creates an IAM user allowed glue:* with an access key while the
checks are still off, then requires a valid signature for every request, as AWS does.
"""

from __future__ import annotations

import json
import os
import urllib.request
from functools import cache
from typing import Any

import botocore.session
from aiobotocore.session import AioSession
from botocore.exceptions import ClientError

from services.core.sources.glue import GLUE
from tests.sources.contract import Expected, listening

REGION = "eu-west-3"  # the contract's alone: the platform's own tests use other regions of the same emulator
ACCOUNT = "123456789012"  # moto's account for keys of its IAM users
LOCATION = "s3://contract-lake/sales"
PARQUET: dict[str, Any] = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                  "Parameters": {"serialization.format": "1"}},
}  # fmt: skip
# Statistics a crawler or Athena writes: the crawl must leave them out of every fingerprint.
STATISTICS = {"numRows": "3", "totalSize": "4096", "transient_lastDdlTime": "1700000000"}
ORDERS = [
    {"Name": "id", "Type": "int"},
    {"Name": "customer_id", "Type": "int"},
    {"Name": "amount", "Type": "decimal(10,2)"},
    {"Name": "created_at", "Type": "timestamp"},
]
VIEW_SQL = "SELECT id, customer_id, amount FROM sales.orders WHERE amount > 100"


def orders_input(columns: list[dict[str, str]]) -> dict[str, Any]:
    return {"Name": "orders", "TableType": "EXTERNAL_TABLE", "Parameters": {"classification": "parquet", **STATISTICS},
            "StorageDescriptor": {"Columns": columns, "Location": f"{LOCATION}/orders/", **PARQUET}}  # fmt: skip


# Glue tables over S3 data are EXTERNAL_TABLEs (as Athena and crawlers create them); hr.employees is a managed one.
SALES_TABLES: list[dict[str, Any]] = [
    {"Name": "customers", "Description": "People who buy", "TableType": "EXTERNAL_TABLE",
     "Parameters": {"classification": "parquet", **STATISTICS},
     "StorageDescriptor": {"Columns": [
         {"Name": "id", "Type": "int"},
         {"Name": "email", "Type": "varchar(200)", "Comment": "Where receipts go"},
         {"Name": "tags", "Type": "array<string>"},
     ], "Location": f"{LOCATION}/customers/", **PARQUET}},
    orders_input(ORDERS),
    {"Name": "big_orders", "TableType": "VIRTUAL_VIEW", "ViewOriginalText": VIEW_SQL, "ViewExpandedText": VIEW_SQL,
     "StorageDescriptor": {"Columns": ORDERS[:3]}},
]  # fmt: skip
EMPLOYEES = {"Name": "employees", "TableType": "MANAGED_TABLE", "StorageDescriptor": {
    "Columns": [{"Name": "id", "Type": "int"}, {"Name": "name", "Type": "varchar(100)"}]}}  # fmt: skip

ASSETS = {
    "sales": "schema",
    "sales/customers": "external_table",
    **{f"sales/customers/{c}": "column" for c in ("id", "email", "tags")},
    "sales/orders": "external_table",
    **{f"sales/orders/{c}": "column" for c in ("id", "customer_id", "amount", "created_at")},
    "sales/big_orders": "view",
    **{f"sales/big_orders/{c}": "column" for c in ("id", "customer_id", "amount")},
    "hr": "schema",
    "hr/employees": "table",
    **{f"hr/employees/{c}": "column" for c in ("id", "name")},
}
# Glue has no primary, unique or foreign keys, and no nullability: the fixture's keys and NOT NULLs are absent.
# fmt: off
ATTRIBUTES: dict[str, dict[str, Any]] = {
    "sales": {"comment": None},
    "hr": {"comment": "People who work here"},
    "sales/customers": {"comment": "People who buy", "primaryKey": [], "uniqueKeys": [], "foreignKeys": [],
                        "tableType": "EXTERNAL_TABLE", "location": f"{LOCATION}/customers/", "partitionKeys": [],
                        "serde": PARQUET["SerdeInfo"]["SerializationLibrary"],
                        "inputFormat": PARQUET["InputFormat"], "parameters": {"classification": "parquet"}},
    "sales/customers/id": {"dataType": "int", "normalizedType": "integer", "nullable": None, "primaryKey": False,
                           "ordinal": 1, "partitionKey": False},
    "sales/customers/email": {"dataType": "varchar(200)", "normalizedType": "string", "nullable": None,
                              "comment": "Where receipts go"},
    "sales/customers/tags": {"dataType": "array<string>", "normalizedType": "array"},
    "sales/orders": {"primaryKey": [], "foreignKeys": [], "location": f"{LOCATION}/orders/"},
    "sales/orders/amount": {"dataType": "decimal(10,2)", "normalizedType": "decimal", "ordinal": 3},
    "sales/orders/created_at": {"dataType": "timestamp", "normalizedType": "timestamp"},
    "sales/big_orders": {"type": "view", "definition": VIEW_SQL, "primaryKey": [], "location": None},
    "hr/employees": {"type": "table", "tableType": "MANAGED_TABLE", "comment": None},
}
# fmt: on


def moto_endpoint() -> str:
    port, _ = listening("MOTO_PORT", 15000)
    return f"http://127.0.0.1:{port}"


def _moto_auth(initial_unauthenticated: str) -> None:
    """moto's IAM checks: on for "0" (every request signed by a known key), off for "inf"."""
    request = urllib.request.Request(f"{moto_endpoint()}/moto-api/reset-auth", data=initial_unauthenticated.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def moto_user_key(user: str, actions: list[str]) -> tuple[str, str]:
    """A new access key (id, secret) of IAM user `user`, allowed `actions`; moto's IAM checks are on afterwards."""
    _moto_auth("inf")
    try:
        iam = botocore.session.get_session().create_client(
            "iam", region_name="us-east-1", endpoint_url=moto_endpoint(), aws_access_key_id="AKIAMOTOSETUP0000000",
            aws_secret_access_key="setup",
        )  # fmt: skip
        try:
            iam.create_user(UserName=user)
        except ClientError as error:
            if error.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=user, PolicyName="glue", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
    finally:
        _moto_auth("0")
    return key["AccessKeyId"], key["SecretAccessKey"]


@cache
def moto_key() -> tuple[str, str]:
    """The tests' access key, allowed glue:*. A user per test process: a key another one still uses stays valid."""
    return moto_user_key(f"ingestion-glue-test-{os.getpid()}", ["glue:*"])


def glue_client(region: str) -> Any:
    """An aiobotocore Glue client of the emulator (an async context manager), signed with the test key."""
    key_id, secret = moto_key()
    return AioSession().create_client("glue", region_name=region, endpoint_url=moto_endpoint(),
                                      aws_access_key_id=key_id, aws_secret_access_key=secret)  # fmt: skip


async def drop_databases(glue: Any) -> None:
    """Every database of the client's region (moto drops their tables with them)."""
    for database in (await glue.get_databases())["DatabaseList"]:
        await glue.delete_database(Name=database["Name"])


class Glue:
    name = "glue"
    spec = GLUE
    expected = Expected(ASSETS, ATTRIBUTES)

    def unavailable(self) -> str | None:
        return listening("MOTO_PORT", 15000)[1]

    async def create_fixture(self) -> None:
        async with glue_client(REGION) as glue:
            await drop_databases(glue)
            await glue.create_database(DatabaseInput={"Name": "sales"})
            for table in SALES_TABLES:
                await glue.create_table(DatabaseName="sales", TableInput=table)
            await glue.create_database(DatabaseInput={"Name": "hr", "Description": "People who work here"})
            await glue.create_table(DatabaseName="hr", TableInput=EMPLOYEES)

    async def change_fixture(self) -> None:
        async with glue_client(REGION) as glue:
            await glue.delete_table(DatabaseName="hr", Name="employees")
            note = {"Name": "note", "Type": "varchar(50)"}
            await glue.update_table(DatabaseName="sales", TableInput=orders_input([*ORDERS, note]))

    def configuration(self) -> dict[str, Any]:
        return {"region": REGION, "endpointUrl": moto_endpoint(), "catalogId": ACCOUNT, "accessKeyId": moto_key()[0]}

    def credentials(self) -> dict[str, Any]:
        return {"secretAccessKey": moto_key()[1]}

    def bad_credentials(self) -> dict[str, Any] | None:
        return {"secretAccessKey": "not-the-secret-access-key"}


PLATFORMS = [Glue()]
