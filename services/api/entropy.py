"""Entropy Data dialect: /api/integrations* exactly as its OpenAPI document describes."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from yarl import URL

from services.api import run_streams
from services.api.context import deps, principal
from services.api.params import MAX_PAGE, bool_param, choice_param, int_param, text_param, uuid_path
from services.api.problems import BadRequest
from services.api.render import iso, json_array_stream
from services.api.timeline_json import change_json, changes_cursor, event_json, parse_changes_cursor
from services.core import ingestion, timeline
from services.core.errors import AlreadyRunning
from services.core.integrations import IntegrationFilter, IntegrationWithRun
from services.core.model import Integration, Source
from services.core.runs import RunState, RunStatus

PAGE_SIZE = 50
STATUSES = ["RUNNING", "SUCCESS", "FAILED", "CANCELLED"]
routes = web.RouteTableDef()


def run_json(run: RunState) -> dict[str, Any]:
    # Entropy knows no QUEUED: a requested run that no connector picked up yet is RUNNING.
    status = RunStatus.RUNNING if run.status is RunStatus.QUEUED else run.status
    return {
        "ingestionRunId": str(run.run_id),
        "integrationExternalId": run.integration_external_id,
        "status": status.value,
        "message": run.message,
        "assetsProcessed": run.counts.processed,
        "assetsCreated": run.counts.created,
        "assetsUpdated": run.counts.updated,
        "assetsDeleted": run.counts.deleted,
        "startedAt": iso(run.started_at or run.requested_at),
        "completedAt": iso(run.completed_at),
    }


def integration_json(integration: Integration, *, with_configuration: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalId": integration.external_id,
        "name": integration.name,
        "source": integration.source.value,
        "enabled": integration.enabled,
        "assetOwnerTeamExternalId": integration.owning_team_external_id,
        "schedule": integration.schedule.model_dump(by_alias=True, exclude_none=True) if integration.schedule else None,
        "scheduleError": integration.schedule_error,
    }
    if with_configuration:
        body["configuration"] = integration.configuration
        body["failSafeThreshold"] = integration.fail_safe_threshold
    return body


@routes.get("/integrations")
async def list_integrations(request: web.Request) -> web.StreamResponse:
    """Every visible integration, as the Entropy spec has it; with `p`, one page and a next Link (extension)."""
    where = IntegrationFilter(
        team_external_id=text_param(request, "owningTeamExternalId"),
        source=choice_param(request, "source", [s.value for s in Source]),
        enabled=bool_param(request, "enabled"),
    )
    service = deps(request).integrations
    if "p" not in request.query:
        # The entropy-data CLI resolves a name from one unpaged listing: all of them, streamed in batches.
        batches = service.list_all(principal(request), where)
        return await json_array_stream(request, ([list_item_json(item) for item in batch] async for batch in batches))
    page = int_param(request, "p", 0, 0, MAX_PAGE)
    items, more = await service.list(principal(request), where, page=page, page_size=PAGE_SIZE)
    return web.json_response([list_item_json(item) for item in items], headers=next_link(request, page, more))


def list_item_json(item: IntegrationWithRun) -> dict[str, Any]:
    integration, run = item
    return integration_json(integration, with_configuration=False) | {"latestRun": run_json(run) if run else None}


def next_link(request: web.Request, page: int, more: bool) -> dict[str, str]:
    """Paging by `p` (our extension): a `Link: <...p=N+1>; rel="next"` header while more results exist."""
    if not more:
        return {}
    next_url: URL = request.url.update_query({"p": str(page + 1)})
    return {"Link": f'<{next_url}>; rel="next"'}


@routes.get("/integrations/{externalId}")
async def get_integration(request: web.Request) -> web.Response:
    integration = await deps(request).integrations.get(principal(request), request.match_info["externalId"])
    return web.json_response(integration_json(integration, with_configuration=True))


@routes.get("/integrations/{externalId}/runs")
async def list_runs(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, 1, 200)
    status = choice_param(request, "status", STATUSES)
    statuses = None
    if status is not None:
        statuses = [RunStatus.QUEUED, RunStatus.RUNNING] if status == "RUNNING" else [RunStatus(status)]
    page = int_param(request, "p", 0, 0, MAX_PAGE)
    after = _runs_after(text_param(request, "after"))
    runs, more = await ingestion.list_runs(
        deps(request).runtime, principal(request), request.match_info["externalId"], statuses, limit, page, after
    )
    headers = {}
    if more:  # the next page's URL carries the keyset position too: deep pages cost what the first does
        last = runs[-1]
        position = base64.urlsafe_b64encode(f"{last.requested_at.isoformat()}|{last.run_id}".encode()).decode()
        next_url = request.url.update_query({"p": str(page + 1), "after": position})
        headers["Link"] = f'<{next_url}>; rel="next"'
    return web.json_response([run_json(run) for run in runs], headers=headers)


def _runs_after(raw: str | None) -> tuple[datetime, uuid.UUID] | None:
    if raw is None:
        return None
    try:
        at, _, run_id = base64.urlsafe_b64decode(raw.encode("ascii")).decode().partition("|")
        position = datetime.fromisoformat(at), uuid.UUID(run_id)
    except (ValueError, UnicodeError):
        raise BadRequest(
            "'after' is not a position from a Link header of this API; follow the Link as given.", field="after"
        ) from None
    if position[0].tzinfo is None:
        raise BadRequest("'after' is not a position from a Link header of this API.", field="after")
    return position


@routes.get("/integrations/{externalId}/runs/latest")
async def latest_run(request: web.Request) -> web.Response:
    run = await ingestion.latest_run(deps(request).runtime, principal(request), request.match_info["externalId"])
    return web.json_response(run_json(run))


@routes.get("/integrations/{externalId}/runs/{ingestionRunId}")
async def get_run(request: web.Request) -> web.Response:
    run_id = uuid_path(request, "ingestionRunId")
    run = await ingestion.get_run(deps(request).runtime, principal(request), request.match_info["externalId"], run_id)
    return web.json_response(run_json(run))


@routes.post("/integrations/{externalId}/run")
async def trigger_run(request: web.Request) -> web.Response:
    external_id = request.match_info["externalId"]
    try:
        run = await ingestion.trigger_run(deps(request).runtime, principal(request), external_id)
    except AlreadyRunning as conflict:
        return web.json_response({"status": "already_running", "message": conflict.detail}, status=409)
    body = {
        "integrationExternalId": external_id,
        "scheduledAt": iso(run.requested_at),
        "deferred": False,
        "message": "Ingestion run scheduled.",
        "ingestionRunId": str(run.run_id),
    }
    return web.json_response(body, status=202)


@routes.post("/integrations/{externalId}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    await ingestion.cancel_run(deps(request).runtime, principal(request), request.match_info["externalId"])
    return web.Response(status=204)


@routes.get("/integrations/{externalId}/runs/{ingestionRunId}/events")
async def run_events(request: web.Request) -> web.Response:
    """The run's timeline (our extension): its accepted events in order; asset batches as counts."""
    run_id, external_id = uuid_path(request, "ingestionRunId"), request.match_info["externalId"]
    after, limit = int_param(request, "after", 0, 0, MAX_PAGE), int_param(request, "limit", 1000, 1, 1000)
    events, more = await timeline.run_timeline(deps(request).runtime, principal(request), external_id, run_id,
                                               after, limit)  # fmt: skip
    headers = keyset_link(request, str(events[-1].seq) if more else None)
    return web.json_response([event_json(event) for event in events], headers=headers)


@routes.get("/integrations/{externalId}/runs/{ingestionRunId}/changes")
async def run_changes(request: web.Request) -> web.Response:
    """The asset keys the run created, updated or deleted (our extension), keyset paged."""
    run_id, external_id = uuid_path(request, "ingestionRunId"), request.match_info["externalId"]
    after, limit = parse_changes_cursor(text_param(request, "after")), int_param(request, "limit", 500, 1, 1000)
    changes, more = await timeline.run_changes(deps(request).runtime, principal(request), external_id, run_id,
                                               after, limit)  # fmt: skip
    headers = keyset_link(request, changes_cursor(changes[-1]) if more else None)
    return web.json_response([change_json(change) for change in changes], headers=headers)


def keyset_link(request: web.Request, after: str | None) -> dict[str, str]:
    """`Link: <...after=...>; rel="next"` while more follow: the next page starts right after this one's last."""
    if after is None:
        return {}
    return {"Link": f'<{request.url.update_query({"after": after})}>; rel="next"'}


@routes.get("/integrations/{externalId}/runs/{ingestionRunId}/stream")
async def stream_run_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events (our extension): the run's events so far (after Last-Event-ID), then live, until it ends."""
    run_id, external_id = uuid_path(request, "ingestionRunId"), request.match_info["externalId"]
    after = run_streams.last_event_id(request) or 0
    run = await ingestion.get_run(deps(request).runtime, principal(request), external_id, run_id)
    return await run_streams.stream(request, lambda event: event.run_id == run_id, timeline.run_replay(run_id), after,
                                    ends=True, over=run.status.is_terminal)  # fmt: skip


@routes.get("/events/stream")
async def stream_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events (our extension): every run event the key may see, live; after Last-Event-ID, from there."""
    after = run_streams.last_event_id(request)
    who = principal(request)
    replay = timeline.visible_replay(who) if after is not None else None
    return await run_streams.stream(request, timeline.visible_to(who), replay, after or 0, ends=False)
