"""Secoda CSV metadata (spec secoda.md §3): rows of columns read into database, schema, table and column resources,
keyed by their databuilder ids by the rule JSONL shares; every problem is a 400 naming the part, the line a row
starts on and the field."""

import json

import pytest

from services.core.imports import InvalidUpload, Resource
from services.core.imports.csv_metadata import parse
from services.core.imports.formats import FORMATS, Format
from services.core.imports.jsonl_metadata import parse as parse_jsonl

HEADER = "database,schema,name,description,is_view,last_updated_time,col_name,col_description,col_type,sort_order\n"


def csv(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(row + "\n" for row in rows)).encode()


def refused(raw: bytes) -> str:
    with pytest.raises(InvalidUpload) as error:
        parse({"file": raw})
    assert error.value.field == "file"
    return error.value.detail


def test_rows_become_the_hierarchy_parents_first_with_the_documented_attributes():
    snapshot = parse({"file": csv(
        'shop,public,orders,"All orders",false,1700000000,ID,"The id",integer,1',
        'shop,public,orders,"All orders",false,1700000000,total,,"numeric(10,2)",2',
        "shop,public,open_orders,,TRUE,None,id,,,",
    )})  # fmt: skip
    assert snapshot.resources == [
        Resource("shop", "database", "shop", "", {"databuilder_id": "shop"}),
        Resource("shop.public", "schema", "public", "shop", {"databuilder_id": "shop.public"}),
        Resource("shop.public.orders", "table", "orders", "shop.public", {
            "databuilder_id": "shop.public.orders", "native_type": "table", "description": "All orders",
            "external_updated_at": "2023-11-14T22:13:20+00:00"}),
        Resource("shop.public.orders.id", "column", "id", "shop.public.orders", {
            "databuilder_id": "shop.public.orders.id", "description": "The id", "type": "integer", "sort_order": 1}),
        Resource("shop.public.orders.total", "column", "total", "shop.public.orders", {
            "databuilder_id": "shop.public.orders.total", "type": "numeric(10,2)", "sort_order": 2}),
        Resource("shop.public.open_orders", "table", "open_orders", "shop.public", {
            "databuilder_id": "shop.public.open_orders", "native_type": "view"}),
        Resource("shop.public.open_orders.id", "column", "id", "shop.public.open_orders", {
            "databuilder_id": "shop.public.open_orders.id"}),
    ]  # fmt: skip
    assert snapshot.edges == [] and snapshot.warnings == []


def test_keys_depend_on_identity_only_so_a_reupload_with_new_descriptions_keeps_them():
    first = parse({"file": csv("shop,public,orders,Old,false,1,id,Old id,int,1")})
    second = parse({"file": csv("shop,public,orders,New,true,2,id,New id,bigint,3")})
    assert [r.key for r in first.resources] == [r.key for r in second.resources]
    assert second.resources[2].attributes["description"] == "New"


def test_names_with_slashes_and_percent_signs_are_escaped_in_keys_not_in_names():
    snapshot = parse({"file": csv("a/b,50%,t,,,,c,,,")})
    assert [(r.key, r.name) for r in snapshot.resources] == [
        ("a%2Fb", "a/b"), ("a%2Fb.50%25", "50%"), ("a%2Fb.50%25.t", "t"), ("a%2Fb.50%25.t.c", "c"),
    ]  # fmt: skip
    assert snapshot.resources[3].attributes["databuilder_id"] == "a/b.50%.t.c"


def jsonl(*lines: dict[str, object]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def keys(resources: list[Resource]) -> dict[str, tuple[str, str, str]]:
    """(kind, key, parent key) by databuilder id."""
    return {r.attributes["databuilder_id"]: (r.kind, r.key, r.parent_key) for r in resources}


def test_a_csv_row_and_jsonl_lines_of_the_same_databuilder_ids_give_the_same_keys():
    from_csv = parse({"file": csv("sec/oda,public,order,,,,Order_ID,,,")}).resources
    explicit = jsonl(
        {"entity_type": "database", "databuilder_id": "sec/oda"},
        {"entity_type": "schema", "databuilder_id": "sec/oda.public", "parent_databuilder_id": "sec/oda"},
        {"entity_type": "table", "databuilder_id": "sec/oda.public.order", "parent_databuilder_id": "sec/oda.public"},
        {"entity_type": "column", "databuilder_id": "sec/oda.public.order.order_id",
         "parent_databuilder_id": "sec/oda.public.order"},
    )  # fmt: skip
    assert keys(parse_jsonl({"resources_file": explicit}).resources) == keys(from_csv)
    assert keys(from_csv)["sec/oda.public.order.order_id"] == (
        "column", "sec%2Foda.public.order.order_id", "sec%2Foda.public.order",
    )  # fmt: skip


def test_the_implicit_database_and_schema_of_a_jsonl_table_are_the_ones_a_csv_row_gives():
    from_csv = parse({"file": csv("secoda,public,order,,,,order_id,,,")}).resources
    implicit = jsonl(
        {"entity_type": "table", "databuilder_id": "secoda.public.order", "database": "secoda", "schema": "public"},
        {"entity_type": "column", "databuilder_id": "secoda.public.order.order_id",
         "parent_databuilder_id": "secoda.public.order"},
    )  # fmt: skip
    assert keys(parse_jsonl({"resources_file": implicit}).resources) == keys(from_csv)


@pytest.mark.parametrize("header", ["sort_order", "col_sort_order"])
def test_either_spelling_of_the_sort_order_header_is_read(header):
    snapshot = parse({"file": csv("db,s,t,c,4", header=f"database,schema,name,col_name,{header}\n")})
    assert snapshot.resources[-1].attributes["sort_order"] == 4


def test_both_sort_order_headers_at_once_are_refused():
    detail = refused(csv("db,s,t,c,1,2", header="database,schema,name,col_name,sort_order,col_sort_order\n"))
    assert detail == "file line 1: the header has both sort_order and col_sort_order; keep one."


def test_a_bom_crlf_line_ends_and_blank_lines_are_fine():
    raw = b"\xef\xbb\xbfdatabase,schema,name,col_name\r\n\r\ndb,s,t,c\r\n\r\n"
    assert [r.key for r in parse({"file": raw}).resources] == ["db", "db.s", "db.s.t", "db.s.t.c"]


def test_a_quoted_value_spanning_lines_is_kept_and_the_next_rows_line_is_where_it_starts():
    raw = csv('db,s,t,"line one\nline two, with a comma\nline three",false,,a,,,', "db,s,u,,maybe,,b,,,")
    assert refused(raw) == "file line 5: is_view must be true or false (got 'maybe')."
    snapshot = parse({"file": csv('db,s,t,"line one\nline two",false,,a,,,')})
    assert snapshot.resources[2].attributes["description"] == "line one\nline two"


def test_unknown_headers_are_ignored_with_a_warning():
    snapshot = parse({"file": csv("db,s,t,c,x,y", header="database,schema,name,col_name,owner,tags\n")})
    assert snapshot.warnings == ["file: column(s) 'owner', 'tags' ignored"]
    assert snapshot.resources[-1].attributes == {"databuilder_id": "db.s.t.c"}


def test_column_names_are_lower_cased_and_a_second_row_of_the_same_column_names_both_lines():
    snapshot = parse({"file": csv("db,S,T,,,,Amount,,,")})
    assert snapshot.resources[-1].name == "amount" and snapshot.resources[-1].key == "db.S.T.amount"
    detail = refused(csv("db,s,t,,,,amount,,,", "db,s,u,,,,amount,,,", "db,s,t,,,,AMOUNT,,,"))
    assert detail == "file line 4: column 'amount' of db.s.t is also on line 2."


@pytest.mark.parametrize(
    ("second", "field"),
    [
        ("db,s,t,other,false,1700000000,b,,,", "description"),
        ("db,s,t,desc,true,1700000000,b,,,", "is_view"),
        ("db,s,t,desc,false,None,b,,,", "last_updated_time"),
    ],
)
def test_rows_of_one_table_that_disagree_on_its_fields_are_refused(second, field):
    detail = refused(csv("db,s,t,desc,false,1700000000,a,,,", "db,s,x,,,,a,,,", second))
    assert detail.startswith(f"file line 4: {field} of table db.s.t differs from line 2; every row of a table")


def test_rows_of_one_table_may_spell_the_same_values_differently():
    snapshot = parse({"file": csv("db,s,t,d,TRUE,,a,,,", "db,s,t,d,true,None,b,,,")})
    assert [r.kind for r in snapshot.resources] == ["database", "schema", "table", "column", "column"]


@pytest.mark.parametrize("epoch", ["", "None"])
def test_an_empty_or_none_epoch_is_null(epoch):
    snapshot = parse({"file": csv(f"db,s,t,,,{epoch},c,,,")})
    assert "external_updated_at" not in snapshot.resources[2].attributes


def test_an_epoch_before_1970_is_a_utc_time():
    snapshot = parse({"file": csv("db,s,t,,,-86400,c,,,")})
    assert snapshot.resources[2].attributes["external_updated_at"] == "1969-12-31T00:00:00+00:00"


@pytest.mark.parametrize(
    ("row", "detail"),
    [
        ("db,s,t,,,1.5,c,,,", "last_updated_time must be a Unix epoch in seconds or None (got '1.5')"),
        ("db,s,t,,,null,c,,,", "last_updated_time must be a Unix epoch in seconds or None (got 'null')"),
        ("db,s,t,,,99999999999999,c,,,", "last_updated_time must be a Unix epoch in seconds or None (got "),
        ("db,s,t,,yes,,c,,,", "is_view must be true or false (got 'yes')"),
        ("db,s,t,,,,c,,,3.0", "sort_order must be an integer from 0 to 2147483647 (got '3.0')"),
        ("db,s,t,,,,c,,,-1", "sort_order must be an integer from 0 to 2147483647 (got '-1')"),
        ("db,s,t,,,,c,,,٣", "sort_order must be an integer from 0 to 2147483647 (got '٣')"),
        ("db,s,t,,,,c,,,2147483648", "sort_order must be an integer from 0 to 2147483647 (got '2147483648')"),
        ("db,s,t,,,,c,,, 1", "sort_order must be an integer from 0 to 2147483647 (got ' 1')"),
        (",s,t,,,,c,,,", "database is required"),
        ("db, ,t,,,,c,,,", "schema is required"),
        ("db,s,,,,,c,,,", "name is required"),
        ("db,s,t,,,,,,,", "col_name is required"),
        ("db,s,t.x,,,,c,,,", "name must not contain a period (got 't.x')"),
        ("db,s,t,,,,c.d,,,", "col_name must not contain a period (got 'c.d')"),
        ("db,s,t,,,,c,,", "9 fields, but the header has 10"),
        ("db,s,t,,,,c,,,,", "11 fields, but the header has 10"),
    ],
)
def test_a_bad_row_is_refused_naming_its_line_and_field(row, detail):
    assert refused(csv("db,s,ok,,,,c,,,", row)).startswith(f"file line 3: {detail}")


def test_a_huge_value_is_not_echoed_whole():
    detail = refused(csv("db,s,t,,,,c,,," + "9" * 10_000))
    assert len(detail) < 200 and "…" in detail


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "file: the CSV is empty: it needs a header row and one row per column."),
        (b"\xef\xbb\xbf\n\n", "file: the CSV is empty: it needs a header row and one row per column."),
        (b"database,schema,name,col_name\n", "file: the CSV has a header but no rows"),
        (b"database,schema,col_name\ndb,s,c\n", "file line 1: the header lacks the required column(s) name."),
        (b"col_name\nc\n", "file line 1: the header lacks the required column(s) database, schema, name."),
        (b"database,schema,name,col_name,name\n", "file line 1: the header names 'name' twice."),
        (b"database,schema,name,col_name\ndb,s,\xff,c\n", "file line 2: the file is not valid UTF-8."),
        (b"database,schema,name,col_name\n\ndb,s,t\x00,c\n", "file line 3: NUL characters (\\u0000) are not allowed."),
        (
            b'database,schema,name,col_name,col_description\ndb,s,t,c,"two\nlines"\ndb,s,t,d,"nul \x00"\n',
            "file line 4: NUL characters (\\u0000) are not allowed.",
        ),
        (
            b"database,schema,name,col_name,col_description\ndb,s,t,c,\xed\xa0\x80\n",
            "file line 2: the file is not valid UTF-8.",
        ),  # an encoded surrogate
        (
            b'database,schema,name,col_name\ndb,s,t,c\ndb,s,"t,c\n',
            "file line 3: malformed CSV (unexpected end of data).",
        ),
        (b'database,schema,name,col_name\ndb,s,"t"x,c\n', "file line 2: malformed CSV ("),
    ],
)
def test_a_bad_file_is_refused_naming_the_line(raw, detail):
    assert refused(raw).startswith(detail)


def test_an_identity_too_long_for_the_assets_index_is_refused():
    assert refused(csv(f"{'d' * 700},{'s' * 700},{'t' * 700},,,,c,,,")) == (
        "file line 2: the resource's identity is longer than 2000 bytes."
    )


@pytest.mark.parametrize("field", ["database", "schema", "name", "col_name"])
def test_a_name_longer_than_1000_characters_is_refused_naming_its_field(field):
    header, names = "database,schema,name,col_name\n", {"database": "db", "schema": "s", "name": "t", "col_name": "c"}

    def row(length: int) -> str:
        return ",".join(("x" * length if name == field else value) for name, value in names.items())

    detail = refused(csv("db,s,ok,c", row(1001), header=header))
    assert detail == f"file line 3: {field} is longer than 1000 characters."
    assert "x" * 1000 in {r.name for r in parse({"file": csv(row(1000), header=header)}).resources}


def test_a_name_too_long_for_the_name_indexes_is_refused():
    assert refused(csv("db,s," + "表" * 900 + ",,,,c,,,")) == (
        "file line 2: name is too long to index: with its parent's identity it takes 2704 bytes in UTF-8, more than "
        "2600."
    )  # fmt: skip


def test_the_csv_format_reads_its_file_part_through_this_parser():
    snapshot = FORMATS[Format.FILE_CSV].parse({"file": csv("db,s,t,,,,c,,,"), "other": b"ignored"})
    assert len(snapshot.resources) == 4
