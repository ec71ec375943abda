"""SQL for the Secoda read side: resources (live assets of Secoda's entity types) and lineage edges between them.

Which assets are resources, and their entity and native types, are SQL expressions here, so that a filter on a
type and the type a resource shows are one rule. Listings are in (created_at, id) order, paged by OFFSET (page
numbers), and each is shaped so that one index gives that order: `assets_catalog` for one integration, a
parent's children index for one parent, `lineage_edges_from`/`_to`/`_listing` for edges.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.core.imports.model import ENTITY_TYPES
from services.core.model import Principal

# PostgreSQL's relation kinds besides "table" are tables whose native type is the kind; other kinds that are not
# Secoda entity types (a dbt "test") are not resources at all.
_TABLE_KINDS = ("view", "materialized_view", "external_table", "foreign_table")
_KINDS_SQL = "(" + ", ".join(f"'{kind}'" for kind in (*ENTITY_TYPES, *_TABLE_KINDS)) + ")"
_TABLE_KINDS_SQL = "(" + ", ".join(f"'{kind}'" for kind in _TABLE_KINDS) + ")"
_ENTITY_TYPE = f"CASE WHEN a.kind IN {_TABLE_KINDS_SQL} THEN 'table' ELSE a.kind END"
_NATIVE_TYPE = (
    f"CASE WHEN a.kind IN {_TABLE_KINDS_SQL} THEN a.kind "
    "WHEN a.kind = 'table' THEN coalesce(a.attributes ->> 'native_type', 'table') "
    "ELSE a.attributes ->> 'native_type' END"
)
_RESOURCE = f"a.deleted_at IS NULL AND a.kind IN {_KINDS_SQL}"
_COLUMNS = (
    f"a.integration_id, a.asset_key, {_ENTITY_TYPE} AS entity_type, {_NATIVE_TYPE} AS native_type, a.name, "
    "a.parent_key, a.attributes, a.object_id, a.created_at, a.updated_at"
)


@dataclass(frozen=True)
class ResourceRow:
    integration_id: uuid.UUID
    key: str
    entity_type: str
    native_type: str | None
    name: str
    parent_key: str | None
    attributes: dict[str, Any]
    object_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


def _resource(r: asyncpg.Record) -> ResourceRow:
    return ResourceRow(r["integration_id"], r["asset_key"], r["entity_type"], r["native_type"], r["name"],
                       r["parent_key"], r["attributes"], r["object_id"], r["created_at"], r["updated_at"])  # fmt: skip


@dataclass(frozen=True)
class ResourceQuery:
    """What a catalog page narrows to; None matches anything. `integration_ids` and `parents` hold only what the
    principal may see (the caller resolved them); without either, the principal's visibility applies."""

    integration_ids: Sequence[uuid.UUID] | None = None
    parents: Sequence[tuple[uuid.UUID, str]] | None = None  # (integration id, asset key) of a parent
    entity_types: Sequence[str] | None = None
    native_types: Sequence[str] | None = None
    titles: Sequence[str] | None = None


class _Where:
    """A conjunction of SQL conditions and their parameters; each `{}` of a condition is its next parameter."""

    def __init__(self, *fixed: str) -> None:
        self.conditions = list(fixed)
        self.params: list[Any] = []

    def add(self, condition: str, *values: Any) -> None:
        first = len(self.params) + 1
        self.params.extend(values)
        self.conditions.append(condition.format(*(f"${first + i}" for i in range(len(values)))))

    def visible(self, column: str, principal: Principal) -> None:
        """Mirrors Principal.can_view: organization owners see everything, team keys their teams' integrations."""
        if not principal.org_owner:
            self.add(f"{column} IN (SELECT i.id FROM integrations i WHERE i.owning_team_id = ANY({{}}::uuid[]))",
                     principal.team_ids)  # fmt: skip

    @property
    def sql(self) -> str:
        return " AND ".join(self.conditions)

    async def page(
        self, conn: asyncpg.Connection, source: str, columns: str, order: str, offset: int, limit: int
    ) -> tuple[int, list[asyncpg.Record]]:
        """(total, one page in `order`) of the rows of `source` (a table and its alias) that match."""
        total: int = await conn.fetchval(f"SELECT count(*) FROM {source} WHERE {self.sql}", *self.params)
        if offset >= total:
            return total, []
        n = len(self.params)
        rows = await conn.fetch(f"SELECT {columns} FROM {source} WHERE {self.sql} ORDER BY {order} "
                                f"OFFSET ${n + 1} LIMIT ${n + 2}", *self.params, offset, limit)  # fmt: skip
        return total, rows


async def visible_integration_ids(
    conn: asyncpg.Connection, principal: Principal, ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Those of `ids` that are integrations `principal` may see."""
    rows = await conn.fetch(
        "SELECT id FROM integrations WHERE id = ANY($1::uuid[]) AND ($2::boolean OR owning_team_id = ANY($3::uuid[]))",
        list(ids), principal.org_owner, principal.team_ids,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def visible_parents(
    conn: asyncpg.Connection, principal: Principal, ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, str]]:
    """(integration id, asset key) of those of `ids` that are live resources `principal` may see."""
    where = _Where(_RESOURCE)
    where.add("a.object_id = ANY({}::uuid[])", list(ids))
    where.visible("a.integration_id", principal)
    rows = await conn.fetch(f"SELECT a.integration_id, a.asset_key FROM assets a WHERE {where.sql}", *where.params)
    return [(r["integration_id"], r["asset_key"]) for r in rows]


def _narrowed(principal: Principal, query: ResourceQuery) -> _Where:
    where = _Where(_RESOURCE)
    # One integration or parent is an equality, so that its index gives the order (an ANY would need a sort).
    if query.parents is not None and len(query.parents) == 1:
        where.add("a.integration_id = {} AND a.parent_key = {}", *query.parents[0])
    elif query.parents is not None:
        where.add("(a.integration_id, a.parent_key) IN (SELECT * FROM unnest({}::uuid[], {}::text[]))",
                  [p[0] for p in query.parents], [p[1] for p in query.parents])  # fmt: skip
    if query.integration_ids is not None and len(query.integration_ids) == 1:
        where.add("a.integration_id = {}", query.integration_ids[0])
    elif query.integration_ids is not None:
        where.add("a.integration_id = ANY({}::uuid[])", list(query.integration_ids))
    if query.integration_ids is None and query.parents is None:
        where.visible("a.integration_id", principal)
    if query.entity_types is not None:  # by kind, not _ENTITY_TYPE: the planner knows how common each kind is
        where.add("a.kind = ANY({}::text[])", _kinds_of(query.entity_types))
    for expression, values in ((_NATIVE_TYPE, query.native_types), ("a.name", query.titles)):
        if values is not None:
            where.add(f"{expression} = ANY({{}}::text[])", list(values))
    return where


def _kinds_of(entity_types: Sequence[str]) -> list[str]:
    """The asset kinds that show as these entity types (the inverse of _ENTITY_TYPE)."""
    return [kind for shown in entity_types if shown not in _TABLE_KINDS
            for kind in ((shown, *_TABLE_KINDS) if shown == "table" else (shown,))]  # fmt: skip


async def resource_page(
    conn: asyncpg.Connection, principal: Principal, query: ResourceQuery, offset: int, limit: int
) -> tuple[int, list[ResourceRow]]:
    """(total, one page in (created_at, id) order) of the resources matching `query`."""
    where = _narrowed(principal, query)
    total, rows = await where.page(conn, "assets a", _COLUMNS, "a.created_at, a.object_id", offset, limit)
    return total, [_resource(r) for r in rows]


async def resource_by_id(conn: asyncpg.Connection, principal: Principal, oid: uuid.UUID) -> ResourceRow | None:
    where = _Where(_RESOURCE)
    where.add("a.object_id = {}", oid)
    where.visible("a.integration_id", principal)
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM assets a WHERE {where.sql}", *where.params)
    return _resource(row) if row else None


@dataclass(frozen=True)
class EdgeRow:
    id: uuid.UUID
    from_object_id: uuid.UUID
    to_object_id: uuid.UUID
    created_at: datetime
    updated_at: datetime


def _end_live(end: str) -> str:
    """An edge shows while both its ends are live resources (an end may be another integration's: external lineage).
    By object id, not by (integration, key): the planner then expects (rightly) most edges to pass, and walks the
    edges in order instead of joining them all to sort them."""
    return f"EXISTS (SELECT 1 FROM assets a WHERE a.object_id = e.{end}_object_id AND {_RESOURCE})"


async def edge_page(
    conn: asyncpg.Connection, principal: Principal, from_id: uuid.UUID | None, to_id: uuid.UUID | None, offset: int,
    limit: int,
) -> tuple[int, list[EdgeRow]]:  # fmt: skip
    """(total, one page in (created_at, id) order) of the edges asserted by integrations `principal` may see, between
    resources it may see, from and to the given resources (None: any)."""
    where = _Where()
    for end, oid in (("from", from_id), ("to", to_id)):
        if oid is None:
            where.conditions.append(_end_live(end))
        elif await _live(conn, oid):  # once, not per edge: the planner cannot know that every edge has that end
            where.add(f"e.{end}_object_id = {{}}", oid)
        else:
            return 0, []
    # Asserted by an integration the key sees, between resources it sees (the asserting team's lineage is scoped
    # to its own integrations when resolved; this also holds for edges resolved before a team changed hands).
    for column in ("e.integration_id", "e.from_integration_id", "e.to_integration_id"):
        where.visible(column, principal)
    columns = "e.id, e.from_object_id, e.to_object_id, e.created_at, e.updated_at"
    total, rows = await where.page(conn, "lineage_edges e", columns, "e.created_at, e.id", offset, limit)
    return total, [EdgeRow(r["id"], r["from_object_id"], r["to_object_id"], r["created_at"], r["updated_at"])
                   for r in rows]  # fmt: skip


async def _live(conn: asyncpg.Connection, oid: uuid.UUID) -> bool:
    found: bool = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM assets a WHERE a.object_id = $1 AND {_RESOURCE})",
                                      oid)  # fmt: skip
    return found
