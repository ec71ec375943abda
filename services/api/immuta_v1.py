"""Immuta v1 /data API: connections by key, data objects by object path, child search, crawl, settings, delete.

An object path is the connection key followed by the object's names, one percent-encoded path segment each
(`%20` a space, `%2F` a '/' inside a name). The path is read from the raw URL, so an encoded '/' never splits
a name.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from services.api.context import deps, principal
from services.api.immuta import (
    connection_fields,
    connection_source_values,
    immuta_connection,
    immuta_field_names,
    replace_model,
    technology_of,
)
from services.api.params import bool_param, checked_text, choice_param, int_param, json_body, text_param
from services.api.problems import BadRequest
from services.api.render import iso
from services.core.data_objects import DataObject, object_key_of
from services.core.errors import NotFound
from services.core.model import Integration
from services.core.objects import SETTING_NAMES, SettingsChange

routes = web.RouteTableDef()


def object_path(request: web.Request, prefix: str) -> tuple[str, str]:
    """(connection key, object key) of the object path after `prefix` in the raw URL path."""
    raw = request.rel_url.raw_path.split(prefix, 1)[1] if prefix in request.rel_url.raw_path else ""
    try:
        segments = [unquote(segment, errors="strict") for segment in raw.split("/")]
    except UnicodeDecodeError:
        raise BadRequest("objectPath: every segment must be percent-encoded UTF-8.", field="objectPath") from None
    for segment in segments:
        checked_text(segment, "objectPath", "path parameter")
    if not segments or any(segment == "" for segment in segments):
        raise NotFound(f"No data object has the path '{raw}': empty path segment.")
    return segments[0], object_key_of(segments[1:])


async def existing_object(request: web.Request, prefix: str) -> tuple[str, DataObject]:
    """The connection key and the object the path after `prefix` names, or 404: checked before anything else of
    the request (its query or body), as the spec orders the checks."""
    key, object_key = object_path(request, prefix)
    await immuta_connection(request, key)
    return key, await deps(request).objects.get(principal(request), key, object_key)


def v1_object_json(obj: DataObject) -> dict[str, Any]:
    settings = obj.settings
    return {
        "objectPath": obj.path,
        "technology": technology_of(obj.connection.source),
        "state": "active" if obj.active else "inactive",
        "settings": {
            name: {
                "value": _setting_json(settings.value(name)),
                "hasDescendantsWithOverrides": name in obj.overridden_below,
            }
            for name in SETTING_NAMES
        },
        "overrides": list(obj.overrides),
        "dataSourceId": obj.data_source_id,
        "createdAt": iso(obj.created_at),
        "lastCrawled": iso(obj.last_synced_at),
        "remoteId": obj.remote_id if obj.key else None,
    }


def _setting_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [grantee.model_dump() for grantee in value]
    return value


# ---- connections --------------------------------------------------------------------------------


def _number(principal_id: str | None) -> int:
    return int(principal_id) if principal_id and principal_id.isdigit() else 0  # 0: the system


async def v1_connection_json(request: web.Request, integration: Integration) -> dict[str, Any]:
    created_by, updated_by = _number(integration.created_by), _number(integration.updated_by or integration.created_by)
    names = await deps(request).connections.principal_names([n for n in {created_by, updated_by} if n])

    def person(number: int) -> dict[str, Any]:
        return {"id": number, "name": names.get(number, "system"), "email": None}

    return {
        "connectionKey": integration.external_id,
        "connection": connection_fields(integration, with_password=False),
        "createdAt": iso(integration.created_at),
        "createdBy": created_by,
        "updatedAt": iso(integration.updated_at),
        "updatedBy": updated_by,
        "creator": person(created_by),
        "updater": person(updated_by),
        "nativeIntegrationId": integration.number,
    }


@routes.get("/connection/{connectionKey}")
async def get_connection(request: web.Request) -> web.Response:
    integration = await immuta_connection(request, request.match_info["connectionKey"])
    return web.json_response(await v1_connection_json(request, integration))


@routes.put("/connection/{connectionKey}")
async def put_connection(request: web.Request) -> web.Response:
    key = request.match_info["connectionKey"]
    current = await immuta_connection(request, key)  # 404 before 400
    sent = (await json_body(request, replace_model(current.source))).connection
    configuration = sent.replaced_configuration(current.configuration)
    with immuta_field_names(current.source):
        _, run = await deps(request).connections.replace(principal(request), key, configuration, sent.credentials())
    return web.json_response({"objectPath": [key], "bulkId": str(run.task_id)})


# ---- objects --------------------------------------------------------------------------------------


@routes.get("/object/{objectPath:.+}")
async def get_object(request: web.Request) -> web.Response:
    _, found = await existing_object(request, "/data/object/")
    return web.json_response(v1_object_json(found))


def _search_params(request: web.Request) -> tuple[str, str, int, int, str | None]:
    sort = choice_param(request, "sortField", ["name", "createdAt"]) or "name"
    order = choice_param(request, "sortOrder", ["asc", "desc"]) or "asc"
    offset = int_param(request, "offset", 0, 0, 2**31 - 1)
    limit = int_param(request, "limit", 100, 1, 1000)
    return sort, order, offset, limit, text_param(request, "searchText")


@routes.post("/object/search")
async def search_roots(request: web.Request) -> web.Response:
    sort, order, offset, limit, text = _search_params(request)
    total, roots = await deps(request).objects.roots(
        principal(request), connection_source_values(), text, sort, order, offset, limit
    )
    return web.json_response({"count": total, "hits": [v1_object_json(o) for o in roots]})


@routes.post("/object/search/{objectPath:.+}")
async def search_children(request: web.Request) -> web.Response:
    key, parent = await existing_object(request, "/data/object/search/")
    sort, order, offset, limit, text = _search_params(request)
    total, hits = await deps(request).objects.search_children(principal(request), key, parent.key, text, sort, order,
                                                              offset, limit)  # fmt: skip
    return web.json_response({"count": total, "hits": [v1_object_json(o) for o in hits]})


class CrawlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    forceRecursive: bool = False


@routes.post("/crawl/{objectPath:.+}")
async def crawl(request: web.Request) -> web.Response:
    key, target = await existing_object(request, "/data/crawl/")
    force = await _force_recursive(request)
    run = await deps(request).objects.crawl(principal(request), key, target.key, force)
    return web.json_response({"objectPath": target.path, "bulkId": str(run.task_id)})


async def _force_recursive(request: web.Request) -> bool:
    """forceRecursive from the query (the seed's table) or the body (its curl); the query wins."""
    from_query = bool_param(request, "forceRecursive")
    raw = await request.read()
    from_body = False
    if raw.strip():
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise BadRequest(f"The request body is not valid JSON: {error}", field="body") from None
        if not isinstance(data, dict):
            raise BadRequest('The request body must be a JSON object such as {"forceRecursive": true}.', field="body")
        try:
            from_body = CrawlOptions.model_validate(data).forceRecursive
        except ValidationError as error:
            raise BadRequest("forceRecursive must be true or false.", field="forceRecursive") from error
    return from_query if from_query is not None else from_body


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: SettingsChange


@routes.put("/settings/{objectPath:.+}")
async def put_settings(request: web.Request) -> web.Response:
    key, target = await existing_object(request, "/data/settings/")
    body = await json_body(request, SettingsBody)
    updated, task = await deps(request).objects.change_settings(principal(request), key, target.key, body.overrides)
    return web.json_response(v1_object_json(updated) | {"bulkId": str(task.task_id)})


@routes.delete("/object/{objectPath:.+}")
async def delete_object(request: web.Request) -> web.Response:
    key, target = await existing_object(request, "/data/object/")
    child_count, _ = await deps(request).objects.delete(principal(request), key, target.key, deregisters=True)
    return web.json_response({"objectPath": target.path, "childCount": child_count})
