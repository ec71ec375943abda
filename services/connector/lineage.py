"""Resolve the ends of a source's lineage to assets: its own by key, other integrations' tables and columns by
name (case-insensitive; a missing part of the name matches anything). Set-based: one query for every table
reference of a run, one for every column reference."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from services.core.imports import ExternalColumn, ExternalTable, Internal, LineageEdge, LineageEnd, QueriedTables

Ref = tuple[str, str]  # (integration id as text, asset key): as reported, converted once per resolved asset

# A table is matched through its parent chain: schema (its parent), database (the schema's parent).
_MATCH_TABLES = """
SELECT r.i, t.integration_id, t.asset_key
FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS r(i, db, sch, tbl)
JOIN assets t ON lower(t.name) = r.tbl AND t.deleted_at IS NULL AND t.integration_id <> $5
             AND t.kind IN ('table', 'view', 'materialized_view', 'foreign_table')  -- the partial index's predicate
LEFT JOIN assets s ON s.integration_id = t.integration_id AND s.asset_key = t.parent_key AND s.deleted_at IS NULL
LEFT JOIN assets d ON d.integration_id = t.integration_id AND d.asset_key = s.parent_key AND d.deleted_at IS NULL
WHERE (r.sch IS NULL OR lower(s.name) = r.sch) AND (r.db IS NULL OR lower(d.name) = r.db)
"""

_MATCH_COLUMNS = """
SELECT r.i, c.integration_id, c.asset_key
FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[]) AS r(i, integration_id, table_key, col)
JOIN assets c ON c.integration_id = r.integration_id AND c.parent_key = r.table_key AND c.kind = 'column'
             AND lower(c.name) = r.col AND c.deleted_at IS NULL
"""


@dataclass
class ResolvedLineage:
    edges: list[dict[str, object]] = field(default_factory=list)  # LineageEdgePayload-shaped
    unmatched: int = 0  # external references that matched no asset (skipped: they may appear later)


async def resolve(conn: asyncpg.Connection, integration_id: uuid.UUID, edges: list[LineageEdge]) -> ResolvedLineage:
    tables = sorted({t for end in _ends(edges) for t in _tables_of(end)}, key=repr)
    table_matches = await _match_tables(conn, integration_id, tables)
    columns = sorted({end for end in _ends(edges) if isinstance(end, ExternalColumn)}, key=repr)
    column_matches = await _match_columns(conn, columns, table_matches)
    result = ResolvedLineage()
    seen: set[tuple[Ref, Ref]] = set()
    own = str(integration_id)

    def refs(end: LineageEnd) -> list[Ref]:
        if isinstance(end, Internal):
            return [(own, end.key)]
        if isinstance(end, ExternalColumn):
            found = column_matches.get(end, [])
        elif isinstance(end, ExternalTable):
            found = table_matches.get(end, [])
        else:
            found = [ref for table in end.tables for ref in table_matches.get(table, [])]
        if not found:
            result.unmatched += 1
        return found

    for edge in edges:
        sources, targets = refs(edge.source), refs(edge.target)
        for source in sources:
            for target in targets:
                if (source, target) not in seen and source != target:
                    seen.add((source, target))
                    result.edges.append({"from_integration_id": source[0], "from_key": source[1],
                                         "to_integration_id": target[0], "to_key": target[1]})  # fmt: skip
    return result


def _ends(edges: list[LineageEdge]) -> Iterable[LineageEnd]:
    for edge in edges:
        yield edge.source
        yield edge.target


def _tables_of(end: LineageEnd) -> tuple[ExternalTable, ...]:
    if isinstance(end, ExternalTable):
        return (end,)
    if isinstance(end, ExternalColumn):
        return (end.table,)
    if isinstance(end, QueriedTables):
        return end.tables
    return ()


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


async def _match_tables(
    conn: asyncpg.Connection, integration_id: uuid.UUID, tables: list[ExternalTable]
) -> dict[ExternalTable, list[Ref]]:
    if not tables:
        return {}
    rows = await conn.fetch(
        _MATCH_TABLES, list(range(len(tables))), [_lower(t.database) for t in tables],
        [_lower(t.schema) for t in tables], [t.table.lower() for t in tables], integration_id,
    )  # fmt: skip
    found: dict[ExternalTable, list[Ref]] = {}
    for row in sorted(rows, key=lambda r: (r["i"], str(r["integration_id"]), r["asset_key"])):
        found.setdefault(tables[row["i"]], []).append((str(row["integration_id"]), row["asset_key"]))
    return found


async def _match_columns(
    conn: asyncpg.Connection, columns: list[ExternalColumn], tables: dict[ExternalTable, list[Ref]]
) -> dict[ExternalColumn, list[Ref]]:
    probes = [(column, ref) for column in columns for ref in tables.get(column.table, [])]
    if not probes:
        return {}
    rows = await conn.fetch(
        _MATCH_COLUMNS, list(range(len(probes))), [uuid.UUID(ref[0]) for _, ref in probes],
        [ref[1] for _, ref in probes],
        [column.column.lower() for column, _ in probes],
    )  # fmt: skip
    found: dict[ExternalColumn, list[Ref]] = {}
    for row in sorted(rows, key=lambda r: (r["i"], r["asset_key"])):
        found.setdefault(probes[row["i"]][0], []).append((str(row["integration_id"]), row["asset_key"]))
    return found
