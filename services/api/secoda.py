"""Secoda's Integrations API (/api/v1/integration/..., /api/v2/integration_v2/...): integrations by id, metadata
imports (CSV, JSONL), dbt Core artifacts, Slack.

Secoda's page envelope (`links`, `meta`, `count`, `total_pages`, `results`; 1-based `page`, 50 per page, absolute
links keeping the other parameters, null at the ends) and DRF-style errors (`detail`). Paths answer with and
without their trailing slash, never with a redirect (a redirected POST loses its multipart body).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.api.context import deps, principal
from services.api.multipart import read_parts
from services.api.params import json_body, text_param
from services.api.problems import BadRequest
from services.api.render import iso
from services.core.errors import AlreadyRunning, Conflict, InvalidInput, NotFound
from services.core.imports.formats import FORMATS, Format
from services.core.integrations import NewIntegration
from services.core.model import Integration, Source
from services.core.sources import SPECS, SourceSpec, spec_for

PAGE_SIZE = 50
# Secoda shows a workspace id on every integration; this product is one workspace.
WORKSPACE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "ingestion-control-plane/workspace"))
# Secoda's type strings where they differ from our source values (none do yet); a platform Secoda has no type for
# (sqlite, duckdb) shows under ours. Every platform with a spec can be created: crawled ones and uploads alike.
TYPE_NAMES: dict[Source, str] = {}

routes = web.RouteTableDef()  # under /api/v1
v2_routes = web.RouteTableDef()  # under /api/v2


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def both(table: web.RouteTableDef, method: str, path: str) -> Callable[[Handler], Handler]:
    """Register a handler for `path` and `path` + '/' (no redirects between them)."""

    def register(handler: Handler) -> Handler:
        table.route(method, path)(handler)
        table.route(method, path + "/")(handler)
        return handler

    return register


def integration_json(integration: Integration) -> dict[str, Any]:
    teams = [str(integration.owning_team_id)] if integration.owning_team_id else []
    return {
        "id": str(integration.id),
        "created_at": iso(integration.created_at),
        "updated_at": iso(integration.updated_at),
        "name": integration.name,
        "type": type_of(integration.source),
        "credentials": {},  # write-only: never returned
        "workspace_id": WORKSPACE_ID,
        "ssh_tunnel": None,
        "execute_access": teams,
        # Secoda's hourly/daily extraction schedule: none is set through this dialect (and never for custom ones).
        "scheduled_extractions_hour": None,
        "scheduled_extractions_frequency": None,
        "scheduled_extractions_next_run": None,
        "scheduled_extractions_last_run": None,
        "properties": {},
        "preview_access_users": [],
        "preview_access_roles": [],
        "preview_access_groups": [],
        "teams": teams,
    }


def type_of(source: Source) -> str:
    return TYPE_NAMES.get(source, source.value)


def source_of_type(name: str) -> Source | None:
    """The platform a Secoda type names, if it can be created (SPECS is read per call: platforms join it)."""
    return next((source for source in SPECS if type_of(source) == name), None)


def page_number(request: web.Request) -> int:
    raw = text_param(request, "page")
    if raw is None:
        return 1
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
        raise web.HTTPNotFound(text="Invalid page.")
    return int(raw)


def list_response(request: web.Request, results: list[Any], total: int, page: int) -> dict[str, Any]:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if page > pages:
        raise web.HTTPNotFound(text="Invalid page.")

    def link(number: int | None) -> str | None:
        return None if number is None else str(request.url.update_query({"page": str(number)}))

    previous = page - 1 if page > 1 else None
    following = page + 1 if page < pages else None
    return {
        "links": {"next": link(following), "previous": link(previous)},
        "meta": {"page": page, "previous_page": previous, "next_page": following},
        "count": total,
        "total_pages": pages,
        "results": results,
    }


@both(routes, "GET", "/integration/integrations")
async def list_integrations(request: web.Request) -> web.Response:
    page = page_number(request)
    kind = text_param(request, "type")
    source = next((s.value for s in Source if type_of(s) == kind), None)
    if kind is not None and source is None:
        return web.json_response(list_response(request, [], 0, page))  # an unknown type matches nothing
    total, items = await deps(request).integrations.page_by_creation(principal(request), source, page - 1, PAGE_SIZE)
    return web.json_response(list_response(request, [integration_json(i) for i in items], total, page))


class NewSecodaIntegration(BaseModel):
    """Secoda's create body. Every field is optional in its schema; `type` is required here (we must know what
    it is). Unknown fields are ignored, as Secoda's serializers do."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(default="Untitled", min_length=1, max_length=200)
    type: str
    teams: list[str] = Field(default_factory=list, max_length=1)
    credentials: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _supported(cls, value: str) -> str:
        if source_of_type(value) is None:
            raise ValueError(f"type must be one of: {', '.join(sorted(type_of(source) for source in SPECS))}")
        return value

    @property
    def source(self) -> Source:
        source = source_of_type(self.type)
        assert source is not None  # checked by the validator
        return source


def _configuration(body: NewSecodaIntegration) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(configuration, credentials) of the integration: Secoda sends both in `credentials`."""
    spec = spec_for(body.source)
    if not spec.crawled:
        if body.credentials:
            raise InvalidInput(f"credentials of a {body.type} integration should always be empty {{}}.",
                               field="credentials")  # fmt: skip
        return {}, None
    return split_credentials(spec, body.credentials)


def split_credentials(spec: SourceSpec[Any, Any], sent: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Secoda's one `credentials` object split into our configuration and credentials by the spec's field names
    (`user` is Secoda's `username`), each checked by the spec's models (errors name `credentials.<field>`)."""
    secrets = spec.secret_fields
    configured = {field.alias or name for name, field in spec.config_model.model_fields.items()}
    if "username" in configured and "user" in sent:
        if "username" in sent:
            raise InvalidInput("credentials.user: send `user` or `username`, not both.", field="credentials.user")
        sent = {("username" if name == "user" else name): value for name, value in sent.items()}
    unknown = sorted(set(sent) - secrets - configured)
    if unknown:
        known = sorted("user" if name == "username" else name for name in configured | secrets)
        raise InvalidInput(f"credentials.{unknown[0]}: not a field of a {spec.name} integration; its fields: "
                           f"{', '.join(known)}.", field=f"credentials.{unknown[0]}")  # fmt: skip
    configuration = {name: value for name, value in sent.items() if name in configured}
    credentials = {name: value for name, value in sent.items() if name in secrets}
    spec.parse_config(configuration)  # a 400 before the team is looked up (the create checks them again)
    spec.parse_credentials(credentials)
    return configuration, credentials


@both(routes, "POST", "/integration/integrations")
async def create_integration(request: web.Request) -> web.Response:
    body = await json_body(request, NewSecodaIntegration)
    configuration, credentials = _configuration(body)
    service = deps(request).integrations
    team = await _team(request, body.teams) if body.teams else await service.default_team(principal(request))
    integration_id = uuid.uuid4()
    spec = NewIntegration(
        externalId=str(integration_id), name=body.name, source=body.source, configuration=configuration,
        credentials=credentials, owningTeamExternalId=team,
    )  # fmt: skip
    created = await service.create(principal(request), spec, integration_id=integration_id)
    return web.json_response(integration_json(created), status=201)


async def _team(request: web.Request, teams: list[str]) -> str:
    """The owning team: one, named by its id (as responses show it) or its externalId."""
    found = await deps(request).access.team_by_id_or_external_id(teams[0])
    if found is None:
        raise BadRequest(f"teams: team '{teams[0][:60]}' does not exist.", field="teams")
    return found


async def _integration(request: web.Request) -> Integration:
    return await deps(request).integrations.get_by_id(principal(request), _integration_id(request))


@both(routes, "GET", "/integration/integrations/{integration_id}")
async def get_integration(request: web.Request) -> web.Response:
    return web.json_response(integration_json(await _integration(request)))


@both(routes, "DELETE", "/integration/integrations/{integration_id}")
async def delete_integration(request: web.Request) -> web.Response:
    """204; its resources and lineage go with it, and a running sync is told to stop."""
    integration = await _integration(request)
    await deps(request).integrations.delete(principal(request), integration.external_id, cancel_active=True)
    return web.Response(status=204)


def _integration_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["integration_id"])
    except ValueError:
        raise NotFound("Integration not found.") from None


async def _upload(request: web.Request, format_: Format) -> web.Response:
    """Validate the whole upload and store it: 200 once stored. A CSV/JSONL import then runs (`run_id`), or waits
    for the integration's current sync (`run_id` null); dbt artifacts wait for a trigger."""
    service = deps(request).uploads
    # 404/403/400 before a byte of the body is read.
    integration = await service.target(principal(request), _integration_id(request), format_)
    spec = FORMATS[format_]
    parts = await read_parts(request, spec.required_parts, spec.optional_parts)
    accepted = await service.accept(principal(request), integration, format_, parts)
    body: dict[str, Any] = {"upload_id": str(accepted.upload_id)}
    if not spec.queued:
        body["message"] = "Artifacts stored; trigger a sync to import them."
    elif accepted.run is not None:
        body |= {"message": "Upload stored; its import is running.", "run_id": str(accepted.run.run_id)}
    else:
        body |= {"message": "Upload stored; its import starts when the integration's current sync ends.",
                 "run_id": None}  # fmt: skip
    return web.json_response(body)


@both(routes, "POST", "/integration/integrations/{integration_id}/import_metadata")
async def import_metadata(request: web.Request) -> web.Response:
    return await _upload(request, Format.FILE_CSV)


@both(routes, "POST", "/integration/integrations/{integration_id}/import_jsonl_metadata")
async def import_jsonl_metadata(request: web.Request) -> web.Response:
    return await _upload(request, Format.FILE_JSONL)


@both(routes, "POST", "/integration/dbt/{integration_id}/upload_artifacts")
async def upload_artifacts(request: web.Request) -> web.Response:
    """Store the latest manifest and run results (validated); a trigger syncs them."""
    return await _upload(request, Format.DBT_CORE)


@both(routes, "POST", "/integration/dbt/{integration_id}/trigger")
async def trigger_dbt(request: web.Request) -> web.Response:
    try:
        run = await deps(request).uploads.trigger_dbt(principal(request), _integration_id(request))
    except AlreadyRunning:
        raise Conflict("Integration sync already in progress") from None
    return web.json_response({"message": "Sync started.", "run_id": str(run.run_id)})


@both(routes, "GET", "/integration/dbt/{integration_id}/failing_tests")
async def failing_tests(request: web.Request) -> web.Response:
    found = await deps(request).uploads.failing_tests(principal(request), _integration_id(request))
    return web.json_response({"warning": [str(i) for i in found.warning], "failing": [str(i) for i in found.failing]})


@both(v2_routes, "GET", "/integration_v2/slack/conversations/list")
async def slack_conversations(request: web.Request) -> web.Response:
    """The channels of the connected Slack integration: none can be connected here (Slack is unreachable)."""
    return web.json_response([])
