"""Secoda JSONL metadata (spec secoda.md §4): resources keyed by databuilder id with implicit databases and schemas,
lineage edges between LineageIDs, strict JSON types, and every problem a 400 naming the part, line and field."""

import json
from typing import Any

import pytest

from services.core.imports import (
    ExternalColumn,
    ExternalTable,
    Internal,
    InvalidUpload,
    LineageEdge,
    QueriedTables,
    Resource,
)
from services.core.imports.formats import FORMATS, Format
from services.core.imports.jsonl_metadata import parse

# The resources example of Secoda's "Create your JSONL file" page.
SECODA_EXAMPLE = [
    {"entity_type": "table", "databuilder_id": "secoda.public.order", "title": "order",
     "description": "Orders from KFC", "schema": "public", "database": "secoda"},
    {"entity_type": "column", "databuilder_id": "secoda.public.order.order_id",
     "parent_databuilder_id": "secoda.public.order", "title": "order_id", "is_pk": True, "hidden": False},
    {"entity_type": "dashboard", "databuilder_id": "dashboard.revenue_2023_forecast", "title": "2023 Revenue Forecast"},
    {"entity_type": "chart", "databuilder_id": "dashboard.revenue_2023_forecast.yoy_growth",
     "parent_databuilder_id": "dashboard.revenue_2023_forecast", "title": "YoY Growth"},
]  # fmt: skip
TABLE = {"entity_type": "table", "databuilder_id": "db.s.t", "database": "db", "schema": "s"}


def jsonl(*lines: Any) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def internal(databuilder_id: str) -> dict[str, str]:
    return {"type": "internal_resource", "databuilder_id": databuilder_id}


def edge(source: Any, target: Any) -> dict[str, Any]:
    return {"from_identifier": source, "to_identifier": target}


def refused(resources: bytes, lineages: bytes | None = None) -> InvalidUpload:
    parts = {"resources_file": resources} | ({"lineages_file": lineages} if lineages is not None else {})
    with pytest.raises(InvalidUpload) as error:
        parse(parts)
    return error.value


def resources_refused(*lines: Any) -> str:
    error = refused(jsonl(*lines))
    assert error.field == "resources_file"
    return error.detail


def lineages_refused(*lines: Any) -> str:
    error = refused(jsonl(*SECODA_EXAMPLE), jsonl(*lines))
    assert error.field == "lineages_file"
    return error.detail


# ---- resources -----------------------------------------------------------------------------------


def test_the_secoda_example_gives_its_resources_parents_first_with_an_implicit_database_and_schema():
    assert parse({"resources_file": jsonl(*SECODA_EXAMPLE)}).resources == [
        Resource("dashboard.revenue_2023_forecast", "dashboard", "2023 Revenue Forecast", "",
                 {"databuilder_id": "dashboard.revenue_2023_forecast"}),
        Resource("dashboard.revenue_2023_forecast.yoy_growth", "chart", "YoY Growth", "dashboard.revenue_2023_forecast",
                 {"databuilder_id": "dashboard.revenue_2023_forecast.yoy_growth"}),
        Resource("secoda", "database", "secoda", "", {"databuilder_id": "secoda"}),
        Resource("secoda.public", "schema", "public", "secoda", {"databuilder_id": "secoda.public"}),
        Resource("secoda.public.order", "table", "order", "secoda.public",
                 {"databuilder_id": "secoda.public.order", "description": "Orders from KFC"}),
        Resource("secoda.public.order.order_id", "column", "order_id", "secoda.public.order",
                 {"databuilder_id": "secoda.public.order.order_id", "is_pk": True}),
    ]  # fmt: skip


def test_every_documented_field_is_kept_by_kind_and_other_keys_are_ignored():
    lines = [
        {"entity_type": "database", "databuilder_id": "db", "title": "Warehouse", "description": "d",
         "definition": "# Doc", "native_type": "postgres", "external_updated_at": "2000-10-31T01:30:00.000-05:00"},
        {"entity_type": "schema", "databuilder_id": "db.s", "parent_databuilder_id": "db", "sort_order": 1},
        {"entity_type": "table", "databuilder_id": "db.s.t", "parent_databuilder_id": "db.s", "native_type": "view",
         "type": "ignored on a table", "is_pk": "ignored on a table"},
        {"entity_type": "column", "databuilder_id": "db.s.t.c", "parent_databuilder_id": "db.s.t", "type": "integer",
         "sort_order": 0, "is_pk": False, "hidden": True, "group": "ignored on a column"},
        {"entity_type": "dashboard_group", "databuilder_id": "g"},
        {"entity_type": "dashboard", "databuilder_id": "g.d", "parent_databuilder_id": "g", "group": "analytics"},
        {"entity_type": "chart", "databuilder_id": "g.d.c", "parent_databuilder_id": "g.d", "product": "tableau",
         "external_updated_at": "2024-02-29"},
    ]  # fmt: skip
    resources = {r.key: r for r in parse({"resources_file": jsonl(*lines)}).resources}
    assert resources["db"] == Resource("db", "database", "Warehouse", "", {
        "databuilder_id": "db", "description": "d", "definition": "# Doc", "native_type": "postgres",
        "external_updated_at": "2000-10-31T06:30:00+00:00"})  # fmt: skip
    assert resources["db.s"].attributes == {"databuilder_id": "db.s"}
    assert resources["db.s.t"].attributes == {"databuilder_id": "db.s.t", "native_type": "view"}
    assert resources["db.s.t.c"].attributes == {
        "databuilder_id": "db.s.t.c", "type": "integer", "sort_order": 0, "is_pk": False}  # fmt: skip
    assert resources["g.d"].attributes == {"databuilder_id": "g.d", "group": "analytics"}
    assert resources["g.d.c"].attributes == {
        "databuilder_id": "g.d.c",
        "product": "tableau",
        "external_updated_at": "2024-02-29T00:00:00+00:00",
    }


def test_without_a_title_the_name_is_the_databuilder_id_and_null_counts_as_absent():
    lines = [{"entity_type": "dashboard", "databuilder_id": "x/y", "title": None, "description": None}]
    assert parse({"resources_file": jsonl(*lines)}).resources == [
        Resource("x%2Fy", "dashboard", "x/y", "", {"databuilder_id": "x/y"})
    ]


def test_a_table_reuses_database_and_schema_lines_by_databuilder_id():
    lines = [TABLE, {"entity_type": "schema", "databuilder_id": "db.s", "parent_databuilder_id": "db", "title": "S"},
             {"entity_type": "database", "databuilder_id": "db", "title": "The warehouse"}]  # fmt: skip
    keys = [(r.key, r.parent_key) for r in parse({"resources_file": jsonl(*lines)}).resources]
    assert keys == [("db", ""), ("db.s", "db"), ("db.s.t", "db.s")]


def test_a_table_reuses_database_and_schema_lines_by_title_when_no_id_matches():
    lines = [
        TABLE,
        {"entity_type": "database", "databuilder_id": "wh-1", "title": "db"},
        {"entity_type": "schema", "databuilder_id": "wh-1/s", "parent_databuilder_id": "wh-1", "title": "s"},
    ]
    keys = [(r.key, r.parent_key) for r in parse({"resources_file": jsonl(*lines)}).resources]
    assert keys == [("wh-1", ""), ("wh-1%2Fs", "wh-1"), ("db.s.t", "wh-1%2Fs")]


def test_a_schema_of_the_same_title_under_another_database_is_not_reused():
    lines = [
        TABLE,
        {"entity_type": "database", "databuilder_id": "other"},
        {"entity_type": "schema", "databuilder_id": "other.s", "parent_databuilder_id": "other", "title": "s"},
    ]
    keys = [r.key for r in parse({"resources_file": jsonl(*lines)}).resources]
    assert keys == ["other", "other.s", "db", "db.s", "db.s.t"]


def test_implicit_parents_are_made_once_for_all_the_tables_that_name_them():
    lines = [TABLE, TABLE | {"databuilder_id": "db.s.u"}, TABLE | {"databuilder_id": "db.s2.v", "schema": "s2"}]
    keys = [(r.key, r.kind, r.name) for r in parse({"resources_file": jsonl(*lines)}).resources]
    assert keys == [
        ("db", "database", "db"),
        ("db.s", "schema", "s"),
        ("db.s.t", "table", "db.s.t"),
        ("db.s.u", "table", "db.s.u"),
        ("db.s2", "schema", "s2"),
        ("db.s2.v", "table", "db.s2.v"),
    ]


def test_blank_lines_a_bom_and_crlf_are_fine_and_line_numbers_count_every_line():
    raw = b"\xef\xbb\xbf" + jsonl(TABLE).replace(b"\n", b"\r\n") + b"\r\n   \r\n" + b'{"entity_type": "tabel"}\r\n'
    assert refused(raw).detail.startswith("resources_file line 4: entity_type must be one of")


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (
            {"entity_type": "tabel", "databuilder_id": "x"},
            "entity_type must be one of database, schema, table, "
            "column, dashboard_group, dashboard, chart (got 'tabel')",
        ),
        (
            {"databuilder_id": "x"},
            "entity_type must be one of database, schema, table, column, dashboard_group, dashboard, chart (got null)",
        ),
        ({"entity_type": ["table"], "databuilder_id": "x"}, "entity_type must be one of"),
        ({"entity_type": "database"}, "databuilder_id must be a non-empty string (got null)"),
        ({"entity_type": "database", "databuilder_id": 7}, "databuilder_id must be a non-empty string (got 7)"),
        ({"entity_type": "database", "databuilder_id": " "}, "databuilder_id must be a non-empty string (got ' ')"),
        ({"entity_type": "database", "databuilder_id": "x", "title": ""}, "title must be a non-empty string (got '')"),
        ({"entity_type": "database", "databuilder_id": "x", "description": 5}, "description must be a string (got 5)"),
        (
            {"entity_type": "database", "databuilder_id": "x", "external_updated_at": "yesterday"},
            "external_updated_at must be an ISO-8601 date and time (got 'yesterday')",
        ),
        (
            {"entity_type": "database", "databuilder_id": "x", "external_updated_at": 1700000000},
            "external_updated_at must be an ISO-8601 date and time (got 1700000000)",
        ),
        (
            TABLE | {"sort_order": "ignored", "entity_type": "column", "parent_databuilder_id": "p"},
            "sort_order must be an integer from 0 to 2147483647 (got 'ignored')",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "sort_order": "3"},
            "sort_order must be an integer from 0 to 2147483647 (got '3')",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "sort_order": True},
            "sort_order must be an integer from 0 to 2147483647 (got true)",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "sort_order": 1.0},
            "sort_order must be an integer from 0 to 2147483647 (got 1.0)",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "sort_order": -1},
            "sort_order must be an integer from 0 to 2147483647 (got -1)",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "is_pk": "yes"},
            "is_pk must be true or false (got 'yes')",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "is_pk": 1},
            "is_pk must be true or false (got 1)",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.t", "type": {"a": 1}},
            "type must be a string (got an object)",
        ),
        (
            {"entity_type": "table", "databuilder_id": "t2", "database": "db"},
            "a table needs parent_databuilder_id, or both database and schema",
        ),
        (
            {"entity_type": "table", "databuilder_id": "t2", "database": "db", "schema": 3},
            "schema must be a non-empty string (got 3)",
        ),
        (
            {"entity_type": "table", "databuilder_id": "t2", "parent_databuilder_id": ["db.s"]},
            "parent_databuilder_id must be a non-empty string (got an array)",
        ),
        (TABLE, "databuilder_id 'db.s.t' is also on line 1"),
    ],
)
def test_a_bad_resource_line_is_refused_naming_the_line_and_field(line, detail):
    assert resources_refused(TABLE, line).startswith(f"resources_file line 2: {detail}")


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (
            {"entity_type": "column", "databuilder_id": "c"},
            "a column needs parent_databuilder_id (a table or a column)",
        ),
        ({"entity_type": "chart", "databuilder_id": "c"}, "a chart needs parent_databuilder_id (a dashboard)"),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s.x"},
            "parent_databuilder_id 'db.s.x' is not in this file (each upload is a full snapshot)",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "db.s"},
            "a column's parent is a table or a column; 'db.s' is a schema",
        ),
        (
            {"entity_type": "database", "databuilder_id": "d2", "parent_databuilder_id": "db.s.t"},
            "a database has no parent; 'db.s.t' is a table",
        ),
        (
            {"entity_type": "chart", "databuilder_id": "c", "parent_databuilder_id": "db.s.t"},
            "a chart's parent is a dashboard; 'db.s.t' is a table",
        ),
        (
            {"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "c"},
            "parent_databuilder_id goes round in a cycle back to this resource",
        ),
    ],
)
def test_a_resource_whose_parent_does_not_fit_is_refused(line, detail):
    assert resources_refused(TABLE, line) == f"resources_file line 2: {detail}."


def test_columns_may_nest_in_columns_but_not_in_a_cycle():
    column = {"entity_type": "column", "parent_databuilder_id": "db.s.t"}
    nested = [TABLE, column | {"databuilder_id": "a"}, column | {"databuilder_id": "a.b", "parent_databuilder_id": "a"}]
    assert [r.parent_key for r in parse({"resources_file": jsonl(*nested)}).resources][-2:] == ["db.s.t", "a"]
    cycle = [TABLE, column | {"databuilder_id": "x", "parent_databuilder_id": "y"},
             column | {"databuilder_id": "y", "parent_databuilder_id": "x"}]  # fmt: skip
    assert resources_refused(*cycle) == (
        "resources_file line 2: parent_databuilder_id goes round in a cycle back to this resource."
    )


def test_an_implicit_parent_that_would_take_an_id_of_another_kind_is_refused():
    detail = resources_refused({"entity_type": "dashboard", "databuilder_id": "db"}, TABLE)
    assert detail == ("resources_file line 2: its database 'db' would be made with databuilder_id 'db', but line 1 "
                      "is a dashboard with that id; give parent_databuilder_id.")  # fmt: skip


def test_a_database_named_by_two_titles_is_ambiguous():
    databases = [{"entity_type": "database", "databuilder_id": f"d{i}", "title": "db"} for i in (1, 2)]
    assert resources_refused(*databases, TABLE) == (
        "resources_file line 3: its database 'db' could be the database on lines 1 and 2; give parent_databuilder_id."
    )


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "resources_file: the file has no resources (one JSON object per line)."),
        (b"\n  \n\xef\xbb\xbf", "resources_file line 3: not valid JSON at column 1: Expecting value."),
        (b"\xef\xbb\xbf\n\n", "resources_file: the file has no resources (one JSON object per line)."),
        (b'{"a": 1}\n{"entity_type": "table",\n', "resources_file line 1: entity_type must be one of"),
        (
            b'{"entity_type": "table", "databuilder_id": "x"\n',
            "resources_file line 1: not valid JSON at column 47: Expecting ',' delimiter.",
        ),
        (b'{"a": 1} {"b": 2}\n', "resources_file line 1: not valid JSON at column 10: Extra data."),
        (b'  {"entity_type": 1} x\n', "resources_file line 1: not valid JSON at column 22: Extra data."),
        (b"[1, 2]\n", "resources_file line 1: each line must be a JSON object (got an array)."),
        (b'"text"\n', "resources_file line 1: each line must be a JSON object (got 'text')."),
        (b'{"entity_type": NaN}\n', "resources_file line 1: not valid JSON: NaN is not a JSON number."),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "resources_file line 1: the JSON is nested too deeply."),
        (b'{"a": ' + b"9" * 5000 + b"}\n", "resources_file line 1: not valid JSON: Exceeds the limit"),
        (
            b'\n{"entity_type": "database", "databuilder_id": "x\\u0000"}\n',
            "resources_file line 2: 'databuilder_id': NUL characters (\\u0000) are not allowed.",
        ),
        (
            b'{"entity_type": "database", "databuilder_id": "x", "extra": ["\\ud800"]}\n',
            "resources_file line 1: 'extra.0': unpaired UTF-16 surrogates",
        ),
        (
            b'{"entity_type": "database", "databuilder_id": "x", "a\\u0000": 1}\n',
            "resources_file line 1: 'a\\x00': NUL characters",
        ),
        (
            b'{"entity_type": "database",\n "databuilder_id": "\xe9"}\n',
            "resources_file line 2: the file is not valid UTF-8.",
        ),
        (
            b'{"entity_type": "database",\x00 "databuilder_id": "x"}\n',
            "resources_file line 1: NUL characters (\\u0000) are not allowed.",
        ),
    ],
)
def test_a_bad_resources_file_is_refused_naming_the_line(raw, detail):
    assert refused(raw).detail.startswith(detail)


def test_escaped_text_that_postgresql_can_store_is_kept():
    raw = b'{"entity_type": "database", "databuilder_id": "caf\\u00e9 \\\\u0000", "title": "\\ud83d\\ude00"}\n'
    assert parse({"resources_file": raw}).resources == [
        Resource("café \\u0000", "database", "\U0001f600", "", {"databuilder_id": "café \\u0000"})
    ]


def test_a_huge_value_is_not_echoed_whole():
    detail = resources_refused({"entity_type": "x" * 100_000, "databuilder_id": "x"})
    assert len(detail) < 250 and "…" in detail


def test_an_identity_too_long_for_the_assets_index_is_refused():
    detail = resources_refused({"entity_type": "database", "databuilder_id": "é" * 1001, "title": "db"})
    assert detail == "resources_file line 1: the resource's identity is longer than 2000 bytes."


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"entity_type": "dashboard", "databuilder_id": "d", "title": "x" * 1001}, "title"),
        ({"entity_type": "dashboard", "databuilder_id": "x" * 1001}, "databuilder_id"),  # the name without a title
        (TABLE | {"databuilder_id": "db.s.u", "database": "x" * 1001}, "database"),  # an implicit database's name
        (TABLE | {"databuilder_id": "db.s.u", "schema": "x" * 1001}, "schema"),
    ],
)
def test_a_name_longer_than_1000_characters_is_refused_naming_its_field(line, field):
    assert resources_refused(TABLE, line) == f"resources_file line 2: {field} is longer than 1000 characters."


def test_a_title_of_1000_characters_is_kept():
    line = {"entity_type": "dashboard", "databuilder_id": "d", "title": "x" * 1000}
    assert parse({"resources_file": jsonl(line)}).resources[0].name == "x" * 1000


@pytest.mark.parametrize(
    ("lines", "size"),
    [
        ([{"entity_type": "dashboard", "databuilder_id": "d", "title": "表" * 900}], 2700),
        ([{"entity_type": "dashboard_group", "databuilder_id": "g" * 1990, "title": "G"},
          {"entity_type": "dashboard", "databuilder_id": "d", "parent_databuilder_id": "g" * 1990, "title": "x" * 700}],
         2690),
    ],
    ids=["name", "name-and-parent"],
)  # fmt: skip
def test_a_name_too_long_for_the_indexes_with_its_parents_key_is_refused(lines, size):
    assert resources_refused(*lines) == (
        f"resources_file line {len(lines)}: title is too long to index: with its parent's identity it takes {size} "
        "bytes in UTF-8, more than 2600."
    )  # fmt: skip


# ---- lineage -------------------------------------------------------------------------------------


def test_each_lineage_id_type_becomes_its_lineage_end():
    query = {"type": "tables_from_query", "sql": "INSERT INTO mart.x SELECT * FROM raw.a JOIN b ON true"}
    lines = [
        edge(internal("secoda.public.order"), internal("dashboard.revenue_2023_forecast")),
        edge(internal("dashboard.revenue_2023_forecast.yoy_growth"),
             {"type": "external_table", "cluster": "default_cluster", "database": "db", "schema": "s", "table": "t"}),
        edge({"type": "external_column", "database": "db", "schema": "s", "table": "t", "column": "c"},
             internal("secoda.public.order.order_id")),
        edge(query, internal("secoda.public")),  # an implicit schema is a resource of the upload
    ]  # fmt: skip
    snapshot = parse({"resources_file": jsonl(*SECODA_EXAMPLE), "lineages_file": jsonl(*lines)})
    assert snapshot.edges == [
        LineageEdge(Internal("secoda.public.order"), Internal("dashboard.revenue_2023_forecast")),
        LineageEdge(Internal("dashboard.revenue_2023_forecast.yoy_growth"), ExternalTable("db", "s", "t")),
        LineageEdge(ExternalColumn(ExternalTable("db", "s", "t"), "c"), Internal("secoda.public.order.order_id")),
        LineageEdge(QueriedTables((ExternalTable(None, "raw", "a"), ExternalTable(None, None, "b"))),
                    Internal("secoda.public")),
    ]  # fmt: skip


def test_internal_ends_use_the_escaped_key_and_a_repeated_edge_is_kept_once():
    resources = jsonl({"entity_type": "dashboard", "databuilder_id": "a/b"}, {"entity_type": "dashboard_group",
                      "databuilder_id": "c"})  # fmt: skip
    line = edge(internal("a/b"), internal("c"))
    snapshot = parse({"resources_file": resources, "lineages_file": jsonl(line, line) + b"\n"})
    assert snapshot.edges == [LineageEdge(Internal("a%2Fb"), Internal("c"))]


def test_an_empty_lineages_file_has_no_edges():
    assert parse({"resources_file": jsonl(TABLE), "lineages_file": b"\n"}).edges == []


ORDER = internal("secoda.public.order")
EXTERNAL = {"type": "external_table", "database": "db", "schema": "s", "table": "t"}


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (edge(EXTERNAL, EXTERNAL), "at least one of from_identifier and to_identifier must be an internal_resource"),
        (edge(ORDER, ORDER), "from_identifier and to_identifier are the same resource"),
        (
            edge(ORDER, {"type": "tables_from_query", "sql": "SELECT * FROM t"}),
            "tables_from_query can only be a from_identifier (data flows from the tables the query reads)",
        ),
        (
            edge(internal("nope"), ORDER),
            "from_identifier.databuilder_id 'nope' is not in resources_file (an internal_resource is a resource of "
            "this upload)",
        ),
        (
            edge(ORDER, {"type": "internal", "databuilder_id": "x"}),
            "to_identifier.type must be one of "
            "internal_resource, external_table, external_column, tables_from_query (got 'internal')",
        ),
        (
            edge(ORDER, {"databuilder_id": "x"}),
            "to_identifier.type must be one of internal_resource, external_table, "
            "external_column, tables_from_query (got none)",
        ),
        (
            {"from_identifier": "secoda.public.order", "to_identifier": ORDER},
            "from_identifier must be a LineageID "
            'object such as {"type": "internal_resource", "databuilder_id": "..."} (got \'secoda.public.order\')',
        ),
        ({"from_identifier": ORDER}, "to_identifier must be a LineageID object"),
        (
            edge({"type": "internal_resource"}, ORDER),
            "from_identifier.databuilder_id must be a non-empty string (got null)",
        ),
        (edge(ORDER, EXTERNAL | {"schema": None}), "to_identifier.schema must be a non-empty string (got null)"),
        (edge(ORDER, EXTERNAL | {"table": ""}), "to_identifier.table must be a non-empty string (got '')"),
        (edge(ORDER, EXTERNAL | {"type": "external_column"}), "to_identifier.column must be a non-empty string"),
        (
            edge({"type": "tables_from_query", "sql": 5}, ORDER),
            "from_identifier.sql must be a non-empty string (got 5)",
        ),
        (edge({"type": "tables_from_query", "sql": "SELECT 1"}, ORDER), "from_identifier.sql reads no table"),
        (
            edge({"type": "tables_from_query", "sql": "SELECT * FROM t WHERE"}, ORDER),
            "from_identifier.sql: the SQL does not parse at line 1, column 21 near 'WHERE': ",
        ),
        (
            edge({"type": "tables_from_query", "sql": "orders"}, ORDER),
            "from_identifier.sql: the SQL is not a query (got 'orders')",
        ),
    ],
)
def test_a_bad_lineage_line_is_refused_naming_the_line_and_field(line, detail):
    valid = edge(ORDER, EXTERNAL)
    assert lineages_refused(valid, line).startswith(f"lineages_file line 2: {detail}")


def test_a_bad_lineages_file_is_refused_naming_the_line():
    error = refused(jsonl(*SECODA_EXAMPLE), b"\n\n{not json}\n")
    assert (error.field, error.detail) == (
        "lineages_file", "lineages_file line 3: not valid JSON at column 2: Expecting property name enclosed in "
        "double quotes.")  # fmt: skip


def test_the_jsonl_format_takes_resources_file_and_an_optional_lineages_file():
    jsonl_format = FORMATS[Format.FILE_JSONL]
    assert len(jsonl_format.parse({"resources_file": jsonl(TABLE)}).resources) == 3
    both = {"resources_file": jsonl(TABLE), "lineages_file": jsonl(edge(EXTERNAL, internal("db.s.t")))}
    assert jsonl_format.parse(both).edges == [LineageEdge(ExternalTable("db", "s", "t"), Internal("db.s.t"))]


# ---- size ----------------------------------------------------------------------------------------


def test_the_benchmark_sized_upload_of_100k_resources_and_50k_edges_parses_whole():
    """Not timed here (the machine is shared); the module's docstring and the report give the figure."""
    tables, columns = 10_000, 9
    lines = []
    for t in range(tables):
        lines.append(json.dumps(TABLE | {"databuilder_id": f"db.s.t{t}", "title": f"t{t}", "description": "d"}))
        lines.extend(
            json.dumps(
                {
                    "entity_type": "column",
                    "databuilder_id": f"db.s.t{t}.c{c}",
                    "sort_order": c,
                    "parent_databuilder_id": f"db.s.t{t}",
                    "type": "int",
                }
            )
            for c in range(columns)
        )
    edges = [json.dumps(edge(internal(f"db.s.t{i % tables}"), internal(f"db.s.t{(i + 1) % tables}.c{i % columns}")))
             for i in range(50_000)]  # fmt: skip
    snapshot = parse({"resources_file": "\n".join(lines).encode(), "lineages_file": "\n".join(edges).encode()})
    assert len(snapshot.resources) == 2 + tables * (1 + columns) and len(snapshot.edges) == 50_000
    assert snapshot.resources[:3] == [
        Resource("db", "database", "db", "", {"databuilder_id": "db"}),
        Resource("db.s", "schema", "s", "db", {"databuilder_id": "db.s"}),
        Resource("db.s.t0", "table", "t0", "db.s", {"databuilder_id": "db.s.t0", "description": "d"}),
    ]
