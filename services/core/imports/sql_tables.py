"""The tables a SQL query reads (`tables_from_query` lineage), found with a real SQL parser (sqlglot), never regexes.

A table is read when it is a source of some query scope: FROM and JOIN, subqueries anywhere, CTE bodies, the SELECT
of an INSERT, CREATE ... AS, UPDATE ... FROM, MERGE ... USING. Not read: the names of CTEs (a reference to a CTE is
not a table; a CTE that shadows a table of the same name hides it), the target of INSERT, CREATE, UPDATE, DELETE or
MERGE, and table functions such as `generate_series(...)`. The SQL is read in sqlglot's default dialect, which takes
the common ANSI/PostgreSQL syntax; several statements separated by ';' are read together.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from services.core.imports.model import ExternalTable, InvalidUpload
from services.core.imports.upload_text import shown

# Statements whose sources we know how to read; anything else (SHOW, VACUUM, a bare expression) is not a query.
_READABLE = (exp.Query, exp.DDL, exp.DML)


def tables_read(sql: str) -> tuple[ExternalTable, ...]:
    """Every table `sql` reads, once each, in the order the parser's scopes list them.

    Names are as written (unquoted); `database`/`schema` are None when the query does not qualify the table. SQL that
    does not parse, or is no query, raises InvalidUpload whose detail (no final period) the caller prefixes with the
    part, line and field.
    """
    statements = _statements(sql)
    found: dict[ExternalTable, None] = {}  # ordered set
    for statement in statements:
        for scope in traverse_scope(statement):
            for source in scope.sources.values():
                if isinstance(source, exp.Table):
                    table = _external(source)
                    if table is not None:
                        found[table] = None
    return tuple(found)


def _statements(sql: str) -> list[exp.Expr]:
    try:
        parsed = sqlglot.parse(sql)
    except ParseError as error:
        first = error.errors[0] if error.errors else {}
        where = f" at line {first['line']}, column {first['col']}" if "line" in first else ""
        near = f" near {shown(first['highlight'])}" if first.get("highlight") else ""
        reason = first.get("description") or "unexpected syntax"
        raise InvalidUpload(f"the SQL does not parse{where}{near}: {reason}") from None
    except SqlglotError as error:  # the tokenizer: e.g. an unterminated string; its message quotes the query
        raise InvalidUpload(f"the SQL does not parse: {shown(str(error))}") from None
    statements = [statement for statement in parsed if statement is not None]
    if not statements:
        raise InvalidUpload("the SQL is empty")
    for statement in statements:
        if not isinstance(statement, _READABLE):
            raise InvalidUpload(f"the SQL is not a query (got {shown(statement.sql())})")
    return statements


def _external(table: exp.Table) -> ExternalTable | None:
    """The table a source names, or None for a table function."""
    if isinstance(table.this, exp.Dot):  # sqlglot folds a fourth name part into a Dot
        raise InvalidUpload(f"the table {shown(table.sql())} has more than three name parts")
    if not isinstance(table.this, exp.Identifier):
        return None
    return ExternalTable(database=table.catalog or None, schema=table.db or None, table=table.name)
