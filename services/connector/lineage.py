"""Resolve the ends of a source's lineage to assets: its own by key, other integrations' tables and columns by
name (case-insensitive; a missing part of the name matches anything). Set-based: one query for every table
reference of a run, one for every column reference."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from services.core.imports import ExternalColumn, ExternalTable, Internal, LineageEdge, LineageEnd, QueriedTables
from services.core.store import lineage as lineage_store

Ref = tuple[str, str]  # (integration id as text, asset key): as reported, converted once per resolved asset


@dataclass
class ResolvedLineage:
    edges: list[dict[str, object]] = field(default_factory=list)  # LineageEdgePayload-shaped
    unmatched: int = 0  # external references that matched no asset (skipped: they may appear later)


async def resolve(
    conn: asyncpg.Connection, integration_id: uuid.UUID, team: uuid.UUID | None, edges: list[LineageEdge]
) -> ResolvedLineage:
    """The edges between assets; external ends only among the integrations `team` (the asserting integration's
    owning team; None: an org owner's integration) can see."""
    tables = sorted({t for end in _ends(edges) for t in _tables_of(end)}, key=repr)
    table_matches = await _match_tables(conn, integration_id, team, tables)
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
    conn: asyncpg.Connection, integration_id: uuid.UUID, team: uuid.UUID | None, tables: list[ExternalTable]
) -> dict[ExternalTable, list[Ref]]:
    if not tables:
        return {}
    names = [(_lower(t.database), _lower(t.schema), t.table.lower()) for t in tables]
    found: dict[ExternalTable, list[Ref]] = {}
    for i, integration, key in await lineage_store.match_tables(conn, integration_id, team, names):
        found.setdefault(tables[i], []).append((str(integration), key))
    return found


async def _match_columns(
    conn: asyncpg.Connection, columns: list[ExternalColumn], tables: dict[ExternalTable, list[Ref]]
) -> dict[ExternalColumn, list[Ref]]:
    probes = [(column, ref) for column in columns for ref in tables.get(column.table, [])]
    if not probes:
        return {}
    named = [(uuid.UUID(ref[0]), ref[1], column.column.lower()) for column, ref in probes]
    found: dict[ExternalColumn, list[Ref]] = {}
    for i, integration, key in await lineage_store.match_columns(conn, named):
        found.setdefault(probes[i][0], []).append((str(integration), key))
    return found
