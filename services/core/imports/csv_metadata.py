"""Secoda's CSV metadata import (spec §3): one row per column, read into database, schema, table and column resources.

UTF-8 (a BOM is fine), RFC 4180 quoting (a quoted value may span lines; errors name the line a row starts on); the
text holds no NUL (`upload_text.decoded`: the rule of every format's strings). A row names its table by `database`,
`schema` and `name` and its column by `col_name` (lower-cased), each at most 1,000 characters. The resources'
databuilder ids are "database", "database.schema", "database.schema.table" and "database.schema.table.column" (names
have no period, so these are unambiguous), and each key is `resource_key(databuilder_id)`: the key rule of every
format, so a re-upload updates the resources in place, their ids stay, and a JSONL upload of the same databuilder ids
gives the same keys. A column's key is at most 2,000 bytes, and a name fits the indexes with its parent's key. The
sort order header may be spelt `sort_order` or `col_sort_order` (Secoda's page uses both), not both at once. Other
headers are ignored with a warning. Empty values are absent values; `last_updated_time` is a Unix epoch in seconds
(`None` = absent), kept as ISO-8601 UTC.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from services.core.imports.model import InvalidUpload, Resource, Snapshot
from services.core.imports.upload_text import (
    checked_key,
    collector_paused,
    decoded,
    invalid,
    name_problem,
    resource_key,
    shown,
)

PART = "file"
REQUIRED = ("col_name", "database", "schema", "name")
SORT_ORDER = ("sort_order", "col_sort_order")
OPTIONAL = ("col_description", "col_type", *SORT_ORDER, "description", "is_view", "last_updated_time")
MAX_SORT_ORDER = 2**31 - 1
_BOOLEANS = {"true": True, "false": False}
_SHARED = ("description", "is_view", "last_updated_time")  # table fields every row of the table repeats


def parse(parts: Mapping[str, bytes]) -> Snapshot:
    with collector_paused():
        return _parse(decoded(PART, parts[PART]))


def _parse(text: str) -> Snapshot:
    records = _records(text)
    first = next(records, None)
    if first is None:
        raise _invalid(None, "the CSV is empty: it needs a header row and one row per column")
    reader = _Rows(*first)
    for line, fields in records:
        reader.add(line, fields)
    if not reader.snapshot.resources:
        raise _invalid(
            None, f"the CSV has a header but no rows: it needs one row per column (headers: {', '.join(REQUIRED)})"
        )
    return reader.snapshot


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, fields) of each non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    try:
        for fields in reader:
            if fields:
                yield line, fields
            line = reader.line_num + 1
    except csv.Error as error:
        raise _invalid(line, f"malformed CSV ({error})") from None


class _Table(NamedTuple):
    line: int  # its first row
    key: str
    written: tuple[str, str, str]  # description, is_view, last_updated_time as the first row spells them
    read: tuple[str, bool, str | None]  # the same, read


class _Rows:
    """Reads the rows after the header, checking each, into `snapshot` (parents before their children)."""

    def __init__(self, line: int, header: list[str]) -> None:
        self.names = [name.strip() for name in header]
        self.width = len(header)
        self.index: dict[str, int] = {}
        for position, name in enumerate(self.names):
            if name in self.index:
                raise _invalid(line, f"the header names {shown(name)} twice")
            self.index[name] = position
        missing = [name for name in REQUIRED if name not in self.index]
        if missing:
            raise _invalid(line, f"the header lacks the required column(s) {', '.join(missing)}")
        sort_orders = [name for name in SORT_ORDER if name in self.index]
        if len(sort_orders) > 1:
            raise _invalid(line, "the header has both sort_order and col_sort_order; keep one")
        self.sort_order = sort_orders[0] if sort_orders else None
        unknown = [name for name in self.names if name not in REQUIRED and name not in OPTIONAL]
        warnings = [f"{PART}: column(s) {', '.join(shown(name) for name in unknown)} ignored"] if unknown else []
        self.snapshot = Snapshot(warnings=warnings)
        self.parents: set[str] = set()  # database and schema keys already added
        self.tables: dict[tuple[str, str, str], _Table] = {}
        self.columns: dict[str, int] = {}  # column key -> line

    def value(self, fields: list[str], name: str) -> str:
        position = self.index.get(name)
        return "" if position is None else fields[position]

    def add(self, line: int, fields: list[str]) -> None:
        if len(fields) != self.width:
            raise _invalid(line, f"{len(fields)} fields, but the header has {self.width}")
        names = (
            self.name(line, fields, "database"),
            self.name(line, fields, "schema"),
            self.name(line, fields, "name"),
        )
        column = self.name(line, fields, "col_name").lower()
        table = self.tables.get(names)
        if table is None:
            table = self.add_table(line, fields, names)
        else:
            self.check_table(line, fields, names, table)
        self.check_length(line, "col_name", column, table.key)
        databuilder_id = f"{'.'.join(names)}.{column}"
        # The longest key of the row: the table's, schema's and database's are shorter.
        column_key = checked_key(resource_key(databuilder_id), PART, line)
        if column_key in self.columns:
            earlier = self.columns[column_key]
            raise _invalid(line, f"column {shown(column)} of {'.'.join(names)} is also on line {earlier}")
        self.columns[column_key] = line
        attributes: dict[str, Any] = {"databuilder_id": databuilder_id}
        description, data_type = self.value(fields, "col_description"), self.value(fields, "col_type")
        if description:
            attributes["description"] = description
        if data_type:
            attributes["type"] = data_type
        if self.sort_order is not None and self.value(fields, self.sort_order):
            attributes["sort_order"] = _sort_order(line, self.sort_order, self.value(fields, self.sort_order))
        self.snapshot.resources.append(Resource(column_key, "column", column, table.key, attributes))

    def name(self, line: int, fields: list[str], column: str) -> str:
        text = self.value(fields, column)
        if not text.strip():
            raise _invalid(line, f"{column} is required")
        if "." in text:
            raise _invalid(line, f"{column} must not contain a period (got {shown(text)})")
        return text

    def check_length(self, line: int, column: str, name: str, parent_key: str) -> None:
        problem = name_problem(name, parent_key)
        if problem:
            raise _invalid(line, f"{column} {problem}")

    def add_parents(self, database: str, schema: str) -> str:
        """Adds the database and schema unless added already; returns the schema's key."""
        database_key, schema_key = resource_key(database), resource_key(f"{database}.{schema}")
        if database_key not in self.parents:
            self.parents.add(database_key)
            self.snapshot.resources.append(
                Resource(database_key, "database", database, "", {"databuilder_id": database})
            )
        if schema_key not in self.parents:
            self.parents.add(schema_key)
            attributes = {"databuilder_id": f"{database}.{schema}"}
            self.snapshot.resources.append(Resource(schema_key, "schema", schema, database_key, attributes))
        return schema_key

    def add_table(self, line: int, fields: list[str], names: tuple[str, str, str]) -> _Table:
        """The table of a first row, added after its database and schema."""
        database, schema, name = names
        self.check_length(line, "database", database, "")
        self.check_length(line, "schema", schema, resource_key(database))
        self.check_length(line, "name", name, resource_key(f"{database}.{schema}"))
        written = self.shared(fields)
        description, is_view, updated_at = read = _read_shared(line, written)
        databuilder_id = ".".join(names)
        table = self.tables[names] = _Table(line, resource_key(databuilder_id), written, read)
        schema_key = self.add_parents(*names[:2])
        attributes: dict[str, Any] = {"databuilder_id": databuilder_id, "native_type": "view" if is_view else "table"}
        if description:
            attributes["description"] = description
        if updated_at is not None:
            attributes["external_updated_at"] = updated_at
        self.snapshot.resources.append(Resource(table.key, "table", names[2], schema_key, attributes))
        return table

    def check_table(self, line: int, fields: list[str], names: tuple[str, str, str], table: _Table) -> None:
        """A later row of a table gives the same table fields as its first (spec §3 [A]), if maybe spelt otherwise."""
        written = self.shared(fields)
        if written == table.written:
            return
        for label, value, first in zip(_SHARED, _read_shared(line, written), table.read, strict=True):
            if value != first:
                problem = f"{label} of table {'.'.join(names)} differs from line {table.line}"
                raise _invalid(line, f"{problem}; every row of a table must give the same {', '.join(_SHARED)}")

    def shared(self, fields: list[str]) -> tuple[str, str, str]:
        description, is_view, updated_at = (self.value(fields, name) for name in _SHARED)
        return description, is_view, updated_at


def _read_shared(line: int, written: tuple[str, str, str]) -> tuple[str, bool, str | None]:
    return written[0], _is_view(line, written[1]), _epoch(line, written[2])


def _sort_order(line: int, header: str, text: str) -> int:
    # The length first: int() refuses strings of thousands of digits.
    if not (text.isascii() and text.isdecimal()) or len(text) > 10 or int(text) > MAX_SORT_ORDER:
        raise _invalid(line, f"{header} must be an integer from 0 to {MAX_SORT_ORDER} (got {shown(text)})")
    return int(text)


def _is_view(line: int, text: str) -> bool:
    if not text:
        return False
    if text.lower() not in _BOOLEANS:
        raise _invalid(line, f"is_view must be true or false (got {shown(text)})")
    return _BOOLEANS[text.lower()]


def _epoch(line: int, text: str) -> str | None:
    """A Unix epoch in seconds as ISO-8601 UTC; empty or `None` is null."""
    if text in ("", "None"):
        return None
    digits = text.removeprefix("-")
    try:
        if not (digits.isascii() and digits.isdecimal()):
            raise ValueError
        return datetime.fromtimestamp(int(text), UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        raise _invalid(line, f"last_updated_time must be a Unix epoch in seconds or None (got {shown(text)})") from None


def _invalid(line: int | None, problem: str) -> InvalidUpload:
    return invalid(PART, line, problem)
