"""Secoda's read side (/api/v1/resource/..., /api/v1/lineage/manual/): what imports and syncs produced.

Mounted on the Secoda sub-application beside secoda.py's routes, with its envelope, paging and slash rules.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api.context import deps, principal
from services.api.params import checked_text, text_param
from services.api.render import iso
from services.api.secoda import PAGE_SIZE, WORKSPACE_ID, both, list_response, page_number
from services.core.catalog import LineageEdge, Resource, parse_filter

routes = web.RouteTableDef()  # under /api/v1


def resource_json(resource: Resource) -> dict[str, Any]:
    return {
        "id": str(resource.id),
        "entity_type": resource.entity_type,
        "native_type": resource.native_type,
        "title": resource.title,
        "description": resource.description,
        "definition": resource.definition,
        "parent": str(resource.parent) if resource.parent else None,
        "integration": str(resource.integration),
        "databuilder_id": resource.databuilder_id,
        "external_updated_at": resource.external_updated_at,
        "created_at": iso(resource.created_at),
        "updated_at": iso(resource.updated_at),
    }


def edge_json(edge: LineageEdge) -> dict[str, Any]:
    return {
        "id": str(edge.id),
        "from_entity": str(edge.from_entity),
        "to_entity": str(edge.to_entity),
        # The newer documentation's names for the same ends.
        "from_entity_id": str(edge.from_entity),
        "to_entity_id": str(edge.to_entity),
        "direction": "DOWNSTREAM",
        "is_manual": False,  # every edge comes from an import or a sync
        "workspace_id": WORKSPACE_ID,
        "created_at": iso(edge.created_at),
        "updated_at": iso(edge.updated_at),
    }


@both(routes, "GET", "/resource/catalog")
async def resource_catalog(request: web.Request) -> web.Response:
    where = parse_filter(text_param(request, "filter"))
    for text in where.texts():  # JSON escapes can carry what the query string itself could not (\u0000)
        checked_text(text, "filter", "query parameter")
    page = page_number(request)
    total, resources = await deps(request).catalog.page(principal(request), where, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    return web.json_response(list_response(request, [resource_json(r) for r in resources], total, page))


@both(routes, "GET", "/resource/all/{id}")
async def get_resource(request: web.Request) -> web.Response:
    resource = await deps(request).catalog.get(principal(request), request.match_info["id"])
    return web.json_response(resource_json(resource))


@both(routes, "GET", "/lineage/manual")
async def manual_lineage(request: web.Request) -> web.Response:
    page = page_number(request)
    ends = text_param(request, "from_entity"), text_param(request, "to_entity")
    total, edges = await deps(request).catalog.lineage(principal(request), *ends, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    return web.json_response(list_response(request, [edge_json(e) for e in edges], total, page))
