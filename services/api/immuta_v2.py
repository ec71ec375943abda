"""Immuta v2 Connections API (/api/connections): connections, data objects by id, tasks and task runs."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.api.context import deps, principal
from services.api.immuta import (
    CURSOR,
    SYSTEM,
    NewConnection,
    connection_fields,
    connection_source_values,
    decode_cursor,
    encode_cursor,
    immuta_connection,
    immuta_field_names,
    page_json,
    page_limit,
    patch_model,
    principal_text,
    technology_of,
)
from services.api.params import bool_param, choice_param, json_body, text_param, uuid_path
from services.api.problems import BadRequest
from services.api.render import iso
from services.core.connections import require_state
from services.core.data_objects import DataObject, Keyset, Page
from services.core.model import ConnectionState, Integration
from services.core.objects import OBJECT_KINDS, SettingsChange, kinds_of
from services.core.runs import RunState, RunStatus
from services.core.store.objects import ObjectFilter
from services.core.store.run_reads import TaskFilter

routes = web.RouteTableDef()

TASK_TYPES = {"sync": "DATA_OBJECT_SYNC", "delete": "DATA_OBJECT_DELETE", "settings": "SETTINGS_UPDATE"}
ALL_TASK_TYPES = [*TASK_TYPES.values(), "CONNECTION_DELETE"]
TASK_STATUSES = {RunStatus.QUEUED: "PENDING", RunStatus.RUNNING: "RUNNING", RunStatus.SUCCESS: "SUCCEEDED",
                 RunStatus.FAILED: "FAILED", RunStatus.CANCELLED: "CANCELLED"}  # fmt: skip
TRIGGERS = {"manual": "MANUAL", "schedule": "SCHEDULED", "system": "SYSTEM"}
# The seed's pattern for task and run ids: a version 1-8, RFC 4122 variant UUID, or the nil UUID.
SEED_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000"
)


def connection_json(integration: Integration) -> dict[str, Any]:
    return {
        "connectionKey": integration.external_id,
        "connection": connection_fields(integration, with_password=True),
        "state": integration.state.value,
        "createdAt": iso(integration.created_at),
        "createdBy": principal_text(integration.created_by),
        "updatedAt": iso(integration.updated_at),
        "updatedBy": principal_text(integration.updated_by or integration.created_by),
    }


def object_json(obj: DataObject) -> dict[str, Any]:
    return {
        "id": str(obj.id),
        "name": obj.name,
        "type": obj.kind,
        "normalizedType": obj.normalized_type,
        "technology": technology_of(obj.connection.source),
        "remoteId": obj.remote_id,
        "lastSyncedAt": iso(obj.last_synced_at or obj.created_at),
        "connectionKey": obj.connection.external_id,
        "createdBy": "system",
        "createdAt": iso(obj.created_at),
        "updatedBy": "system",
        "updatedAt": iso(obj.updated_at),
    }


def task_json(run: RunState) -> dict[str, Any]:
    return {
        "taskId": str(run.task_id or run.run_id),
        "type": TASK_TYPES[run.kind],
        "status": TASK_STATUSES[run.status],
        "trigger": TRIGGERS.get(run.trigger, "SYSTEM"),
        # The key's principal id for MANUAL tasks, "system" for the others (whoever caused them).
        "createdBy": principal_text(run.created_by) if run.trigger == "manual" else SYSTEM,
        "createdAt": iso(run.requested_at),
    }


def task_run_json(run: RunState) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runId": str(run.run_id),
        "status": TASK_STATUSES[run.status],
        "createdAt": iso(run.requested_at),
        "updatedAt": iso(run.updated_at or run.requested_at),
    }
    if run.started_at is not None:
        body["startedAt"] = iso(run.started_at)
    if run.completed_at is not None:
        body["completedAt"] = iso(run.completed_at)
    if run.status is RunStatus.CANCELLED and run.canceled_by is not None:
        body["canceledBy"] = run.canceled_by
    return body


# ---- connections --------------------------------------------------------------------------------


@routes.get("")
async def list_connections(request: web.Request) -> web.Response:
    limit = page_limit(request)
    after = decode_cursor(text_param(request, CURSOR), ("key",))
    items, more = await deps(request).integrations.list_after(
        principal(request), after["key"] if after else None, limit, sources=connection_source_values()
    )
    cursor = encode_cursor({"key": items[-1].external_id}) if more else None
    return web.json_response({"connections": [connection_json(i) for i in items], "page": page_json(cursor)})


@routes.post("")
async def create_connection(request: web.Request) -> web.Response:
    new = (await json_body(request, NewConnection)).integration()
    with immuta_field_names(new.source):
        created, _ = await deps(request).connections.register(principal(request), new)
    return web.json_response(connection_json(created), status=201)


async def _connection(request: web.Request) -> Integration:
    """The connection named in the path, or 404 (checked before anything else of the request)."""
    return await immuta_connection(request, request.match_info["connectionKey"])


@routes.get("/{connectionKey}")
async def get_connection(request: web.Request) -> web.Response:
    return web.json_response(connection_json(await _connection(request)))


@routes.patch("/{connectionKey}")
async def patch_connection(request: web.Request) -> web.Response:
    connection = await _connection(request)
    dry_run = bool_param(request, "dryRun") or False
    patch = await json_body(request, patch_model(connection.source))
    changes = patch.connection.changes()  # a "[REDACTED]" secret means unchanged: no credentials then
    with immuta_field_names(connection.source):
        updated = await deps(request).integrations.update(
            principal(request), connection.external_id, changes, dry_run=dry_run,
            precondition=require_state(ConnectionState.ACTIVE, ConnectionState.UNHEALTHY, action="a PATCH"),
        )  # fmt: skip
    return web.json_response(connection_json(updated))


@routes.delete("/{connectionKey}")
async def delete_connection(request: web.Request) -> web.Response:
    connection = await _connection(request)
    task_id = await deps(request).connections.delete(principal(request), connection.external_id, require_inactive=True)
    return web.json_response({"taskId": str(task_id)}, status=202)


@routes.post("/{connectionKey}/_activate")
async def activate(request: web.Request) -> web.Response:
    connection = await _connection(request)
    updated = await deps(request).connections.set_active(principal(request), connection.external_id, True)
    return web.json_response(connection_json(updated))


@routes.post("/{connectionKey}/_deactivate")
async def deactivate(request: web.Request) -> web.Response:
    connection = await _connection(request)
    updated = await deps(request).connections.set_active(principal(request), connection.external_id, False)
    return web.json_response(connection_json(updated))


@routes.post("/{connectionKey}/_validate")
async def validate(request: web.Request) -> web.Response:
    connection = await _connection(request)
    updated, health = await deps(request).connections.validate(principal(request), connection.external_id)
    skipped = "Not enabled for this connection: the product governs metadata ingestion only."
    return web.json_response({
        "connectionKey": updated.external_id,
        "state": updated.state.value,
        "validations": [
            {"component": "client", "status": "PASSED" if health.ok else "FAILED", "message": health.message or ""},
            {"component": "policy", "status": "SKIPPED", "message": skipped},
            {"component": "audit", "status": "SKIPPED", "message": skipped},
        ],
    })  # fmt: skip


# ---- data objects -------------------------------------------------------------------------------


class PageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int | None = None
    cursor: str | None = None


class ObjectSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connectionKey: str = Field(min_length=1)
    name: str | None = None
    type: str | None = None  # the native kind in lower case (A8), of any platform
    normalizedType: Literal["CONNECTION", "DATABASE", "SCHEMA", "TABLE"] | None = None
    remoteId: str | None = None
    page: PageRequest = Field(default_factory=PageRequest)

    @field_validator("type")
    @classmethod
    def _known_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in DATA_OBJECT_TYPES:
            raise ValueError(f"type must be one of: {', '.join(DATA_OBJECT_TYPES)}")
        return value


DATA_OBJECT_TYPES = ("connection", *OBJECT_KINDS)


def _kinds(search: ObjectSearch) -> list[str] | None:
    return kinds_of(search.type, search.normalizedType)


def _object_keyset(raw: str | None) -> Keyset | None:
    position = decode_cursor(raw, ("name", "id"))
    if position is None:
        return None
    try:
        return position["name"], uuid.UUID(position["id"])
    except ValueError:
        raise BadRequest(f"'{CURSOR}' is not a cursor from this API.", field=CURSOR) from None


def _object_cursor(page: Page) -> str | None:
    if page.next_after is None:
        return None
    return encode_cursor({"name": page.next_after[0], "id": str(page.next_after[1])})


@routes.post("/dataObjects/_search")
async def search_objects(request: web.Request) -> web.Response:
    search = await json_body(request, ObjectSearch)
    limit = page_limit(request, search.page.limit)
    after = _object_keyset(search.page.cursor)
    where = ObjectFilter(name=search.name, kinds=_kinds(search), remote_id=search.remoteId)
    await immuta_connection(request, search.connectionKey)
    page = await deps(request).objects.search(principal(request), search.connectionKey, where, after, limit)
    return web.json_response({"dataObjects": [object_json(o) for o in page.objects],
                              "page": page_json(_object_cursor(page))})  # fmt: skip


@routes.get("/{connectionKey}/dataObjects/{id}")
async def get_object(request: web.Request) -> web.Response:
    connection = await _connection(request)
    obj = await deps(request).objects.get_by_id(principal(request), connection.external_id, uuid_path(request, "id"))
    return web.json_response(object_json(obj))


@routes.patch("/{connectionKey}/dataObjects/{id}")
async def patch_object(request: web.Request) -> web.Response:
    connection = await _connection(request)
    oid = uuid_path(request, "id")
    objects = deps(request).objects
    target = await objects.get_by_id(principal(request), connection.external_id, oid)
    change = await json_body(request, SettingsChange)
    updated, _ = await objects.change_settings(principal(request), connection.external_id, target.key, change)
    return web.json_response(object_json(updated))


@routes.delete("/{connectionKey}/dataObjects/{id}")
async def delete_object(request: web.Request) -> web.Response:
    connection = await _connection(request)
    objects = deps(request).objects
    target = await objects.get_by_id(principal(request), connection.external_id, uuid_path(request, "id"))
    _, task = await objects.delete(principal(request), connection.external_id, target.key, deregisters=False)
    assert task is not None
    return web.json_response({"taskId": str(task.task_id)}, status=202)


@routes.get("/{connectionKey}/dataObjects/{id}/children")
async def object_children(request: web.Request) -> web.Response:
    connection = await _connection(request)
    objects = deps(request).objects
    parent = await objects.get_by_id(principal(request), connection.external_id, uuid_path(request, "id"))  # 404 first
    limit = page_limit(request)
    after = _object_keyset(text_param(request, CURSOR))
    page = await objects.children(principal(request), connection.external_id, parent.id, after, limit)
    return web.json_response({"children": [object_json(o) for o in page.objects],
                              "page": page_json(_object_cursor(page))})  # fmt: skip


# ---- tasks --------------------------------------------------------------------------------------


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["DATA_OBJECT_SYNC"]


def _task_keyset(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    position = decode_cursor(raw, ("at", "id"))
    if position is None:
        return None
    try:
        return datetime.fromisoformat(position["at"]), uuid.UUID(position["id"])
    except ValueError:
        raise BadRequest(f"'{CURSOR}' is not a cursor from this API.", field=CURSOR) from None


def _task_cursor(after: tuple[datetime, uuid.UUID] | None) -> str | None:
    return encode_cursor({"at": after[0].isoformat(), "id": str(after[1])}) if after else None


def _reverse(mapping: dict[Any, str], value: str | None) -> list[Any] | None:
    return None if value is None else [ours for ours, theirs in mapping.items() if theirs == value]


@routes.get("/{connectionKey}/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    connection = await _connection(request)
    limit = page_limit(request)
    after = _task_keyset(text_param(request, CURSOR))
    task_type = choice_param(request, "filter[type]", ALL_TASK_TYPES)
    status = choice_param(request, "filter[status]", list(TASK_STATUSES.values()))
    trigger = choice_param(request, "filter[trigger]", list(TRIGGERS.values()))
    created_by = text_param(request, "filter[createdBy]")
    parent = text_param(request, "filter[parentId]")
    if parent is not None:
        if not SEED_UUID.fullmatch(parent):
            raise BadRequest(f"'filter[parentId]' must be a UUID, got '{parent[:60]}'", field="filter[parentId]")
    where = TaskFilter(kinds=_reverse(TASK_TYPES, task_type), statuses=_reverse(TASK_STATUSES, status),
                       triggers=_reverse(TRIGGERS, trigger), created_by=created_by)  # fmt: skip
    if parent is not None:  # no task has a parent (one task, one run): nothing matches
        runs: list[RunState] = []
        next_after = None
    else:
        runs, next_after = await deps(request).tasks.list(principal(request), connection.external_id, where, after,
                                                          limit)  # fmt: skip
    return web.json_response({"tasks": [task_json(r) for r in runs], "page": page_json(_task_cursor(next_after))})


@routes.post("/{connectionKey}/tasks")
async def create_task(request: web.Request) -> web.Response:
    connection = await _connection(request)
    await json_body(request, NewTask)
    run = await deps(request).tasks.create_sync(principal(request), connection.external_id)
    return web.json_response(task_json(run))


@routes.get("/{connectionKey}/tasks/{taskId}")
async def get_task(request: web.Request) -> web.Response:
    connection = await _connection(request)
    run = await deps(request).tasks.get(
        principal(request), connection.external_id, uuid_path(request, "taskId", SEED_UUID)
    )
    return web.json_response(task_json(run))


@routes.get("/{connectionKey}/tasks/{taskId}/runs")
async def list_task_runs(request: web.Request) -> web.Response:
    connection = await _connection(request)
    task_id = uuid_path(request, "taskId", SEED_UUID)
    run = await deps(request).tasks.get(principal(request), connection.external_id, task_id)  # 404 first
    page_limit(request)
    decode_cursor(text_param(request, CURSOR), ("at", "id"))
    status = choice_param(request, "filter[status]", list(TASK_STATUSES.values()))
    runs = [run] if status is None or TASK_STATUSES[run.status] == status else []
    return web.json_response({"runs": [task_run_json(r) for r in runs], "page": page_json(None)})


@routes.get("/{connectionKey}/tasks/{taskId}/runs/{runId}")
async def get_task_run(request: web.Request) -> web.Response:
    connection = await _connection(request)
    task_id, run_id = uuid_path(request, "taskId", SEED_UUID), uuid_path(request, "runId", SEED_UUID)
    run = await deps(request).tasks.run(principal(request), connection.external_id, task_id, run_id)
    return web.json_response(task_run_json(run))


@routes.post("/{connectionKey}/tasks/{taskId}/runs/{runId}/_cancel")
async def cancel_task_run(request: web.Request) -> web.Response:
    connection = await _connection(request)
    task_id, run_id = uuid_path(request, "taskId", SEED_UUID), uuid_path(request, "runId", SEED_UUID)
    await deps(request).tasks.cancel(principal(request), connection.external_id, task_id, run_id)
    return web.json_response(
        {
            "runId": str(run_id),
            "message": "Cancellation requested; poll the task run for its status (it ends CANCELLED within seconds).",
        }
    )
