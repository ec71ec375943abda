"""Secoda's JSONL metadata import (spec §4): `resources_file`, one resource per line, and the optional
`lineages_file`, one lineage edge per line. Blank lines are skipped; every other line is one JSON object.

Resources (`jsonl_resources`): a resource's key is `resource_key(databuilder_id)` and its parent's key that of
`parent_databuilder_id` ("" for none): the key rule of every format, so ids stay stable across uploads and a CSV
upload of the same databuilder ids gives the same keys. The name is `title`, or the databuilder id when there is no
title; it is at most 1,000 characters and fits the indexes with its parent's key (`upload_text.name_problem`), and
a key at most 2,000 bytes. Every key and string of a line is storable text (no NUL, no unpaired surrogate). Types
are checked, never coerced (`sort_order` is a JSON integer, `is_pk` a boolean); null counts as absent; unknown
keys, and keys that do not apply to the line's entity_type, are ignored. `external_updated_at` is ISO-8601 (no
offset = UTC), kept normalised to UTC. A databuilder id twice is refused.

Parents: a column's parent is a table or a column, a chart's a dashboard (both required); a schema's is a database,
a table's a schema or database, a dashboard's a dashboard group (all optional); databases and dashboard groups have
none. A table without `parent_databuilder_id` needs `database` and `schema`, and its parents are found, or made
(spec §4 [A]), deterministically:
- the database: the database line whose databuilder_id is `database`, else the only database line titled
  `database`, else an implicit database resource with databuilder_id and title `database`;
- the schema: the schema line whose databuilder_id is "<database's databuilder_id>.<schema>", else the only schema
  line titled `schema` under that database, else an implicit schema with that databuilder_id and title `schema`.
So the Secoda example's table `secoda.public.order` (database "secoda", schema "public") sits under `secoda.public`
under `secoda`: the databuilder ids the CSV import gives the same names.

Lineage: `{"from_identifier": LineageID, "to_identifier": LineageID}`, data flowing from -> to. A LineageID is one
flat object, as Secoda's "Create your JSONL file" page shows it:
- `{"type": "internal_resource", "databuilder_id": ...}`: a resource of this upload's resources_file (implicit
  databases and schemas included);
- `{"type": "external_table", "cluster": ..., "database": ..., "schema": ..., "table": ...}`: `cluster` is optional
  and ignored (we have no clusters), the other three are required;
- `{"type": "external_column", ... the external_table fields ..., "column": ...}`;
- `{"type": "tables_from_query", "sql": ...}`: from_identifier only; every table the query reads is a source, and a
  query that reads no table is refused.
At least one side is internal; an edge from a resource to itself is refused; a repeated edge is kept once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from json.scanner import make_scanner
from typing import Any

from services.core.imports.jsonl_resources import PART as RESOURCES
from services.core.imports.jsonl_resources import Record, Resources, required_text
from services.core.imports.model import (
    ExternalColumn,
    ExternalTable,
    Internal,
    InvalidUpload,
    LineageEdge,
    LineageEnd,
    QueriedTables,
    Snapshot,
)
from services.core.imports.upload_text import collector_paused, decoded, invalid, resource_key, shown, text_problem_in

LINEAGES = "lineages_file"
LINEAGE_TYPES = ("internal_resource", "external_table", "external_column", "tables_from_query")


def parse(parts: Mapping[str, bytes]) -> Snapshot:
    with collector_paused():
        return _parse(parts)


def _parse(parts: Mapping[str, bytes]) -> Snapshot:
    resources = Resources()
    for line, item in json_lines(RESOURCES, parts[RESOURCES]):
        resources.add(line, item)
    if not resources.by_id:
        raise invalid(RESOURCES, None, "the file has no resources (one JSON object per line)")
    snapshot = Snapshot(resources=resources.ordered())
    if LINEAGES in parts:
        snapshot.edges = lineage_edges(parts[LINEAGES], resources.by_id)
    return snapshot


def json_lines(part: str, raw: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; any problem names the part and line."""
    for number, line in enumerate(decoded(part, raw).split("\n"), start=1):
        if not line or line.isspace():
            continue
        try:
            item = _loads(line)
        except json.JSONDecodeError as error:
            raise invalid(part, number, f"not valid JSON at column {error.colno}: {error.msg}") from None
        except ValueError as error:  # NaN/Infinity, or an integer beyond Python's digit limit
            raise invalid(part, number, f"not valid JSON: {error}") from None
        except RecursionError:
            raise invalid(part, number, "the JSON is nested too deeply") from None
        if type(item) is not dict:
            raise invalid(part, number, f"each line must be a JSON object (got {shown(item)})")
        # NUL and unpaired surrogates arrive only as \u escapes (`decoded` refused raw ones): only such lines need
        # the walk over every key and string.
        found = text_problem_in(item) if "\\u" in line else None
        if found:
            raise invalid(part, number, f"{shown(found[0])}: {found[1]}")
        yield number, item


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
# The C scanner that JSONDecoder.decode calls between its white-space regexes (typeshed wants a scanner as context).
_SCAN = make_scanner(_DECODER)  # type: ignore[arg-type]


def _loads(line: str) -> Any:
    """json.loads without its two white-space regexes when nothing surrounds the value (~30% less time a line)."""
    try:
        item, end = _SCAN(line, 0)
    except StopIteration:  # a syntax error at the start: the full decoder says which
        return _DECODER.decode(line)
    if end == len(line) or line[end:].isspace():
        return item
    return _DECODER.decode(line)  # white space before, or data after, the value


def lineage_edges(raw: bytes, resources: Mapping[str, Record]) -> list[LineageEdge]:
    ends = _Ends(resources)
    edges: dict[LineageEdge, None] = {}  # an ordered set
    for line, item in json_lines(LINEAGES, raw):
        source, target = ends.end(line, item, "from_identifier"), ends.end(line, item, "to_identifier")
        if type(source) is not Internal and type(target) is not Internal:
            problem = "at least one of from_identifier and to_identifier must be an internal_resource"
            raise invalid(LINEAGES, line, problem)
        if source == target:
            raise invalid(LINEAGES, line, "from_identifier and to_identifier are the same resource")
        edges[LineageEdge(source, target)] = None
    return list(edges)


class _Ends:
    """Reads LineageIDs; one Internal per resource, however many edges name it."""

    def __init__(self, resources: Mapping[str, Record]) -> None:
        self.resources = resources
        self.internal: dict[str, Internal] = {}
        self.queries: dict[str, QueriedTables] = {}  # a file may repeat a query for many targets: parse it once

    def end(self, line: int, item: dict[str, Any], side: str) -> LineageEnd:
        lineage_id = item.get(side)
        if type(lineage_id) is not dict:
            example = '{"type": "internal_resource", "databuilder_id": "..."}'
            raise invalid(
                LINEAGES, line, f"{side} must be a LineageID object such as {example} (got {shown(lineage_id)})"
            )
        kind = lineage_id.get("type")
        if kind == "internal_resource":
            databuilder_id = lineage_id.get("databuilder_id")
            known = self.internal.get(databuilder_id) if type(databuilder_id) is str else None
            return known or self.internal_end(line, _field(line, lineage_id, side, "databuilder_id"), side)
        if kind == "external_table":
            return _table(line, lineage_id, side)
        if kind == "external_column":
            return ExternalColumn(_table(line, lineage_id, side), _field(line, lineage_id, side, "column"))
        if kind == "tables_from_query":
            if side == "to_identifier":
                problem = "tables_from_query can only be a from_identifier (data flows from the tables the query reads)"
                raise invalid(LINEAGES, line, problem)
            return self.queried(line, _field(line, lineage_id, side, "sql"))
        got = shown(kind) if "type" in lineage_id else "none"
        raise invalid(LINEAGES, line, f"{side}.type must be one of {', '.join(LINEAGE_TYPES)} (got {got})")

    def queried(self, line: int, sql: str) -> QueriedTables:
        from services.core.imports.sql_tables import tables_read  # sqlglot loads only when an upload has SQL

        end = self.queries.get(sql)
        if end is None:
            try:
                tables = tables_read(sql)
            except InvalidUpload as error:
                raise invalid(LINEAGES, line, f"from_identifier.sql: {error.detail}") from None
            if not tables:
                raise invalid(LINEAGES, line, "from_identifier.sql reads no table")
            end = self.queries[sql] = QueriedTables(tables)
        return end

    def internal_end(self, line: int, databuilder_id: str, side: str) -> Internal:
        end = self.internal.get(databuilder_id)
        if end is None:
            if databuilder_id not in self.resources:
                problem = f"{side}.databuilder_id {shown(databuilder_id)} is not in resources_file"
                raise invalid(LINEAGES, line, f"{problem} (an internal_resource is a resource of this upload)")
            end = self.internal[databuilder_id] = Internal(resource_key(databuilder_id))
        return end


def _field(line: int, lineage_id: dict[str, Any], side: str, field: str) -> str:
    return required_text(LINEAGES, line, lineage_id, field, label=f"{side}.{field}")


def _table(line: int, lineage_id: dict[str, Any], side: str) -> ExternalTable:
    database, schema, table = (_field(line, lineage_id, side, name) for name in ("database", "schema", "table"))
    return ExternalTable(database, schema, table)
