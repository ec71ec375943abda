"""The tables a query reads (`tables_from_query` lineage, spec secoda.md §4), found by a SQL parser: every source
of every scope, not CTE names, not write targets, not table functions."""

import pytest

from services.core.imports import ExternalTable, InvalidUpload
from services.core.imports.sql_tables import tables_read


def names(sql: str) -> list[str]:
    return [".".join(part or "-" for part in (t.database, t.schema, t.table)) for t in tables_read(sql)]


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("SELECT * FROM orders", ["-.-.orders"]),
        (
            "select * from shop.orders o join shop.customers c on o.customer_id = c.id",
            ["-.shop.orders", "-.shop.customers"],
        ),
        ('SELECT * FROM "Ware House"."Sales"."Orders"', ["Ware House.Sales.Orders"]),
        (
            "SELECT * FROM a WHERE id IN (SELECT id FROM b WHERE x > (SELECT max(x) FROM c))",
            ["-.-.c", "-.-.b", "-.-.a"],
        ),
        ("SELECT * FROM (SELECT * FROM inner_t) AS sub", ["-.-.inner_t"]),
        (
            "WITH recent AS (SELECT * FROM s.orders) SELECT * FROM recent JOIN s.users USING (id)",
            ["-.s.orders", "-.s.users"],
        ),
        ("WITH orders AS (SELECT * FROM raw.orders) SELECT * FROM orders", ["-.raw.orders"]),  # the CTE shadows
        ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r, numbers", ["-.-.numbers"]),
        ("SELECT * FROM a UNION SELECT * FROM b", ["-.-.a", "-.-.b"]),
        ("INSERT INTO target SELECT * FROM source", ["-.-.source"]),
        ("CREATE TABLE mart.t AS SELECT * FROM stg.a JOIN stg.b ON a.id = b.id", ["-.stg.a", "-.stg.b"]),
        ("CREATE VIEW v AS WITH c AS (SELECT * FROM q) SELECT * FROM c", ["-.-.q"]),
        ("UPDATE t SET a = s.a FROM s WHERE t.id = s.id", ["-.-.s"]),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a", ["-.-.s"]),
        ("DELETE FROM t WHERE id IN (SELECT id FROM gone)", ["-.-.gone"]),
        ("SELECT * FROM a; SELECT * FROM b; SELECT * FROM a", ["-.-.a", "-.-.b"]),
        ("SELECT x::int FROM t1 JOIN t1 AS again ON true", ["-.-.t1"]),  # once each
        ("SELECT * FROM generate_series(1, 3) JOIN real_table ON true", ["-.-.real_table"]),
        ("SELECT 1", []),
        ("SELECT * FROM (VALUES (1), (2)) AS v(a)", []),
        ("INSERT INTO t (a) VALUES (1)", []),
    ],
)
def test_every_table_the_query_reads_and_only_those(sql, read):
    assert names(sql) == read


def test_unqualified_parts_are_none_not_empty():
    assert tables_read("SELECT * FROM s.t") == (ExternalTable(database=None, schema="s", table="t"),)


@pytest.mark.parametrize(
    ("sql", "detail"),
    [
        ("SELEC * FROM x", "the SQL does not parse at line 1, column 12 near 'FROM': "),
        ("SELECT * FROM t WHERE", "the SQL does not parse at line 1, column 21 near 'WHERE': "),
        ("SELECT 'unterminated", "the SQL does not parse: "),
        ("", "the SQL is empty"),
        (" ; ", "the SQL is empty"),
        ("orders", "the SQL is not a query (got 'orders')"),
        ("SHOW TABLES", "the SQL is not a query (got 'SHOW TABLES')"),
        ("DROP TABLE t", "the SQL is not a query (got 'DROP TABLE t')"),
        ("SELECT * FROM a.b.c.d", "the table 'a.b.c.d' has more than three name parts"),
    ],
)
def test_sql_that_is_not_a_readable_query_is_refused(sql, detail):
    with pytest.raises(InvalidUpload) as error:
        tables_read(sql)
    assert error.value.detail.startswith(detail)
    assert "\x1b" not in error.value.detail  # the parser's terminal highlighting stays out of a 400


def test_a_huge_query_is_not_echoed_whole():
    with pytest.raises(InvalidUpload) as error:
        tables_read("SELECT '" + "x" * 10_000)
    assert len(error.value.detail) < 200
