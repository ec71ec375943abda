"""The Secoda read side (spec §6): resources and lineage edges as a principal may see them, and the catalog filter.

A resource is a live asset of one of Secoda's entity types in an integration the principal can see. Its id is the
asset's object id; its parent is the parent asset's (null right below the integration, which is not a resource).
An edge shows while both its ends are live resources and the integration that asserted it is visible.

The filter is the subset of Secoda's filter language the spec names: `exact` and `in` on five fields, and `and`
of filters. It is a conjunction, so it reduces to the values each field may take; a value that cannot be any
resource's (an unknown or malformed id, an unknown entity type) matches nothing rather than being an error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

import asyncpg

from services.core.errors import InvalidInput, NotFound
from services.core.ingestion import Runtime
from services.core.model import Principal
from services.core.objects import object_id
from services.core.store import catalog as store

FilterField = Literal["integration_id", "parent_id", "entity_type", "native_type", "title"]
FIELDS: tuple[FilterField, ...] = get_args(FilterField)
MAX_NESTING = 16  # of `and` filters: deeper is a client bug, refused before it costs anything


@dataclass(frozen=True)
class CatalogFilter:
    """For each constrained field, the values it may take: a conjunction (an empty set matches nothing)."""

    allowed: Mapping[FilterField, frozenset[str]] = field(default_factory=dict)

    def values(self, name: FilterField) -> list[str] | None:
        return sorted(self.allowed[name]) if name in self.allowed else None

    def ids(self, name: FilterField) -> list[uuid.UUID] | None:
        """The field's values that are UUIDs: any other text is no resource's or integration's id."""
        values = self.values(name)
        return None if values is None else [parsed for v in values if (parsed := as_uuid(v)) is not None]

    def texts(self) -> Iterator[str]:
        for values in self.allowed.values():
            yield from values


def as_uuid(text: str) -> uuid.UUID | None:
    """The id `text` spells, or None: a malformed id is no resource's (404 or an empty match, never an error)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _invalid(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where}: {problem}", field=where)


def _shown(value: Any) -> str:
    text = json.dumps(value)  # ASCII-only: safe to echo whatever the client sent
    return text if len(text) <= 60 else text[:57] + "..."


def parse_filter(raw: str | None) -> CatalogFilter:
    """Secoda's `filter` query parameter (JSON); None: no filter. InvalidInput names the operand at fault."""
    if raw is None:
        return CatalogFilter()
    try:
        tree = json.loads(raw)
    except ValueError as error:
        raise _invalid("filter", f"not valid JSON ({error})") from None
    except RecursionError:
        raise _invalid("filter", f"nested deeper than {MAX_NESTING} levels") from None
    allowed: dict[FilterField, frozenset[str]] = {}
    pending: list[tuple[str, Any, int]] = [("filter", tree, 1)]
    while pending:
        where, node, depth = pending.pop()
        if not isinstance(node, dict):
            raise _invalid(where, 'must be an object such as {"operator": "exact", "field": "title", "value": "x"}')
        operator = node.get("operator")
        if operator == "and":
            operands = _only(node, where, ("operator", "operands")).get("operands")
            if not isinstance(operands, list):
                raise _invalid(f"{where}.operands", "an 'and' filter needs a list of filters in 'operands'")
            if operands and depth >= MAX_NESTING:
                raise _invalid(where, f"nested deeper than {MAX_NESTING} levels")
            pending += [(f"{where}.operands[{i}]", item, depth + 1) for i, item in enumerate(operands)][::-1]
        elif operator in ("exact", "in"):
            name = _only(node, where, ("operator", "field", "value")).get("field")
            if name not in FIELDS:
                raise _invalid(f"{where}.field", f"must be one of {', '.join(FIELDS)}; got {_shown(name)}")
            values = _values(operator, node.get("value"), f"{where}.value")
            allowed[name] = allowed[name] & values if name in allowed else values
        else:
            raise _invalid(f"{where}.operator", f"must be one of exact, in, and; got {_shown(operator)}")
    return CatalogFilter(allowed)


def _only(node: dict[str, Any], where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    unknown = [key for key in node if key not in keys]
    if unknown:
        raise _invalid(where, f"unknown key {_shown(unknown[0])}; '{node['operator']}' filters have {', '.join(keys)}")
    return node


def _values(operator: str, value: Any, where: str) -> frozenset[str]:
    if operator == "exact":
        if not isinstance(value, str):
            raise _invalid(where, f"an 'exact' filter needs a string; got {_shown(value)}")
        return frozenset([value])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _invalid(where, f"an 'in' filter needs a list of strings; got {_shown(value)}")
    return frozenset(value)


@dataclass(frozen=True)
class Resource:
    id: uuid.UUID
    entity_type: str
    native_type: str | None
    title: str
    description: str | None
    definition: str | None
    parent: uuid.UUID | None
    integration: uuid.UUID
    databuilder_id: str
    external_updated_at: str | None
    created_at: datetime
    updated_at: datetime


def _text(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    return value if isinstance(value, str) else None


def resource_of(row: store.ResourceRow) -> Resource:
    attributes = row.attributes
    description = _text(attributes, "description")
    return Resource(
        id=row.object_id, entity_type=row.entity_type, native_type=row.native_type, title=row.name,
        # The PostgreSQL crawler keeps a relation's or column's COMMENT as "comment".
        description=description if description is not None else _text(attributes, "comment"),
        definition=_text(attributes, "definition"),
        parent=object_id(row.integration_id, row.parent_key) if row.parent_key else None,
        integration=row.integration_id, databuilder_id=_text(attributes, "databuilder_id") or row.key,
        external_updated_at=_text(attributes, "external_updated_at"), created_at=row.created_at,
        updated_at=row.updated_at,
    )  # fmt: skip


@dataclass(frozen=True)
class LineageEdge:
    id: uuid.UUID
    from_entity: uuid.UUID
    to_entity: uuid.UUID
    created_at: datetime
    updated_at: datetime


class CatalogService:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def page(
        self, principal: Principal, where: CatalogFilter, offset: int, limit: int
    ) -> tuple[int, list[Resource]]:
        """(total, one page in creation order) of the visible resources matching `where`."""
        # One snapshot: the total and the page agree even while a sync changes the catalog.
        async with self._rt.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            query = await _resolved(conn, principal, where)
            if query is None:
                return 0, []
            total, rows = await store.resource_page(conn, principal, query, offset, limit)
        return total, [resource_of(row) for row in rows]

    async def get(self, principal: Principal, resource_id: str) -> Resource:
        oid = as_uuid(resource_id)
        async with self._rt.pool.acquire() as conn:
            row = None if oid is None else await store.resource_by_id(conn, principal, oid)
        if row is None:
            raise NotFound(f"Resource '{resource_id[:60]}' was not found, or this API key cannot see it.")
        return resource_of(row)

    async def lineage(
        self, principal: Principal, from_entity: str | None, to_entity: str | None, offset: int, limit: int
    ) -> tuple[int, list[LineageEdge]]:
        """(total, one page in creation order) of the visible edges from and to the given resources (None: any)."""
        from_id, to_id = (as_uuid(end) if end is not None else None for end in (from_entity, to_entity))
        if (from_entity is not None and from_id is None) or (to_entity is not None and to_id is None):
            return 0, []
        async with self._rt.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total, rows = await store.edge_page(conn, principal, from_id, to_id, offset, limit)
        return total, [LineageEdge(r.id, r.from_object_id, r.to_object_id, r.created_at, r.updated_at) for r in rows]


async def _resolved(conn: asyncpg.Connection, principal: Principal, where: CatalogFilter) -> store.ResourceQuery | None:
    """The filter with its ids narrowed to what `principal` may see; None when it matches nothing."""
    if any(not values for values in where.allowed.values()):
        return None
    integration_ids = where.ids("integration_id")
    if integration_ids is not None:
        integration_ids = await store.visible_integration_ids(conn, principal, integration_ids)
    parent_ids = where.ids("parent_id")
    parents = None if parent_ids is None else await store.visible_parents(conn, principal, parent_ids)
    if integration_ids == [] or parents == []:
        return None
    return store.ResourceQuery(integration_ids, parents, where.values("entity_type"), where.values("native_type"),
                               where.values("title"))  # fmt: skip
