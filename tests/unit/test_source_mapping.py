"""The mapping rules every source plug-in shares: normalized types, and which assets a run counts."""

from __future__ import annotations

import pytest

from services.connector.diff import AssetDiff
from services.connector.sources.base import (
    NORMALIZED_TYPES,
    column_asset,
    container_asset,
    normalized_type,
    schema_asset,
    table_asset,
)


@pytest.mark.parametrize(
    ("native", "normalized"),
    [
        ("integer", "integer"), ("int(11) unsigned", "integer"), ("NUMBER(38,0)", "integer"), ("INT64", "integer"),
        ("bigint", "integer"), ("NUMBER(10,2)", "decimal"), ("numeric(10,2)", "decimal"), ("BIGNUMERIC", "decimal"),
        ("double precision", "float"), ("FLOAT64", "float"), ("real", "float"),
        ("character varying(200)", "string"), ("varchar(200)", "string"), ("STRING", "string"),
        ("enum('a','b')", "string"), ("text", "string"),
        ("tinyint(1)", "boolean"), ("BOOL", "boolean"), ("boolean", "boolean"), ("tinyint(4)", "integer"),
        ("date", "date"), ("time without time zone", "time"), ("DATETIME", "timestamp"),
        ("timestamp without time zone", "timestamp"), ("TIMESTAMP_NTZ(9)", "timestamp"),
        ("timestamp(3) with time zone", "timestamp_tz"), ("TIMESTAMP_LTZ(9)", "timestamp_tz"),
        ("timestamptz", "timestamp_tz"), ("interval", "interval"),
        ("bytea", "binary"), ("varbinary(16)", "binary"), ("BYTES", "binary"),
        ("jsonb", "json"), ("VARIANT", "json"), ("json", "json"), ("uuid", "uuid"),
        ("character varying[]", "array"), ("ARRAY<STRING>", "array"), ("array(varchar)", "array"),
        ("array<string>", "array"), ("VARCHAR[]", "array"), ("ARRAY", "array"),
        ("STRUCT<a INT64>", "struct"), ("row(a integer, b varchar)", "struct"), ("OBJECT", "struct"),
        ("map(varchar, integer)", "map"), ("map<string,int>", "map"), ("MAP(VARCHAR, INTEGER)", "map"),
        ("geometry", "geography"), ("GEOGRAPHY", "geography"), ("my_domain", "other"), ("", "other"),
    ],
)  # fmt: skip
def test_native_types_normalize_the_same_on_every_platform(native: str, normalized: str) -> None:
    assert normalized_type(native) == normalized
    assert normalized in NORMALIZED_TYPES


def _catalog(*, extra_column: bool = False) -> list[dict]:
    db = container_asset("shop", "database")
    schema = schema_asset(db["key"], "sales")
    table = table_asset(schema["key"], "sales", "orders", primary_key=["id"])
    columns = [column_asset(table["key"], "id", "integer", 1, nullable=False, primary_key=True)]
    if extra_column:
        columns.append(column_asset(table["key"], "note", "varchar(50)", 2, nullable=True))
    return [db, schema, table, *columns]


def test_the_level_above_schemas_is_diffed_but_not_counted() -> None:
    first = AssetDiff()
    changes = first.add(_catalog(), {})
    assert len(changes.created) == 4  # the container is stored like any asset ...
    counts = first.counts
    assert (counts.processed, counts.created) == (3, 3)  # ... but not counted

    previous = {asset["key"]: asset["fingerprint"] for asset in _catalog()}
    second = AssetDiff()
    changes = second.add(_catalog(extra_column=True), previous)
    assert [asset["key"] for asset in changes.created] == ["shop/sales/orders/note"] and not changes.updated
    second.finish(live_before=3, fail_safe_percent=20)
    counts = second.counts
    assert (counts.processed, counts.created, counts.updated, counts.deleted) == (4, 1, 0, 0)


def test_a_gone_schema_is_counted_and_its_container_is_not() -> None:
    previous = {asset["key"]: asset["fingerprint"] for asset in _catalog()}
    diff = AssetDiff()
    diff.add([container_asset("shop", "database")], previous)
    removal = diff.finish(live_before=3, fail_safe_percent=100)
    assert (removal.gone, diff.counts.deleted) == (3, 3)


def test_keys_escape_names_and_a_fingerprint_ignores_children() -> None:
    schema = schema_asset(None, "a/b")
    assert (schema["key"], schema["parent_key"]) == ("a%2Fb", "")
    table = table_asset(schema["key"], "a/b", "t")
    assert table["key"] == "a%2Fb/t" and table["attributes"]["uniqueKeys"] == []
    with_column = _catalog(extra_column=True)
    assert with_column[2]["fingerprint"] == _catalog()[2]["fingerprint"]
