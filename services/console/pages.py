"""Console pages: integrations (with Run and Cancel), a run history, schedule fires; thin over the core functions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.api.context import deps
from services.console.session import session
from services.core import ingestion, schedule_fires
from services.core.errors import InvalidInput
from services.core.integrations import IntegrationFilter
from services.core.runs import RunStatus

PAGE_SIZE = 50
routes = web.RouteTableDef()


@routes.get("/", name="integrations")
@aiohttp_jinja2.template("integrations.html")
async def integrations(request: web.Request) -> dict[str, Any]:
    page = _int_query(request, "p") or 0
    who = session(request).principal
    items, more = await deps(request).integrations.list(who, IntegrationFilter(), page=page, page_size=PAGE_SIZE)
    rows = [{"integration": i, "run": run, "may_edit": who.can_edit(i.owning_team_id)} for i, run in items]
    return {"rows": rows, "page": page, "more": more}


@routes.post("/integrations/{externalId}/run", name="run")
async def run(request: web.Request) -> web.Response:
    external_id = request.match_info["externalId"]
    started = await ingestion.trigger_run(deps(request).runtime, session(request).principal, external_id)
    raise web.HTTPSeeOther(_run_url(request, external_id, started.run_id))


@routes.post("/integrations/{externalId}/cancel", name="cancel")
async def cancel(request: web.Request) -> web.Response:
    """Cancel the active run (if any; from a run's page, only if it is that run), then show it: the run page
    follows it to CANCELLED."""
    external_id = request.match_info["externalId"]
    shown = (await request.post()).get("runId")
    try:
        run_id = uuid.UUID(shown) if isinstance(shown, str) else None
    except ValueError:
        raise InvalidInput("That is not a run id.", field="runId") from None
    cancelled = await ingestion.cancel_run(deps(request).runtime, session(request).principal, external_id, run_id)
    if cancelled is None:
        raise web.HTTPSeeOther(request.app.router["integrations"].url_for())
    raise web.HTTPSeeOther(_run_url(request, external_id, cancelled.run_id))


def _run_url(request: web.Request, external_id: str, run_id: uuid.UUID) -> str:
    return str(request.app.router["run_page"].url_for(externalId=external_id, runId=str(run_id)))


@routes.get("/integrations/{externalId}/runs", name="history")
@aiohttp_jinja2.template("history.html")
async def history(request: web.Request) -> dict[str, Any]:
    """Runs newest first, by status, keyset paged like the API: the next page starts right after this one's last."""
    external_id = request.match_info["externalId"]
    status = request.query.get("status") or None
    if status is not None and status not in RunStatus.__members__:
        raise InvalidInput(f"status must be one of {', '.join(RunStatus)}", field="status")
    after = _after(request)
    who = session(request).principal
    integration = await deps(request).integrations.get(who, external_id)
    statuses = [RunStatus(status)] if status else None
    runs, more = await ingestion.list_runs(deps(request).runtime, who, external_id, statuses, PAGE_SIZE, after=after)
    next_query = None
    if more:
        next_query = {"after_at": runs[-1].requested_at.isoformat(), "after_id": str(runs[-1].run_id)}
        next_query |= {"status": status} if status else {}
    return {"integration": integration, "runs": runs, "status": status, "statuses": list(RunStatus),
            "next_query": next_query}  # fmt: skip


def _after(request: web.Request) -> tuple[datetime, uuid.UUID] | None:
    at, run_id = request.query.get("after_at"), request.query.get("after_id")
    if at is None or run_id is None:
        return None
    try:
        position = datetime.fromisoformat(at), uuid.UUID(run_id)
    except ValueError:
        raise InvalidInput("after_at/after_id are not a position of this history: follow its Next link.") from None
    if position[0].tzinfo is None:
        raise InvalidInput("after_at needs a time zone: follow the history's Next link.")
    return position


@routes.get("/integrations/{externalId}/fires", name="fires")
@aiohttp_jinja2.template("fires.html")
async def fires(request: web.Request) -> dict[str, Any]:
    """Every fire of the schedule, skipped ones too (a run was still active), newest first."""
    external_id = request.match_info["externalId"]
    who = session(request).principal
    integration = await deps(request).integrations.get(who, external_id)
    before = _int_query(request, "before")
    found, more = await schedule_fires.list_fires(deps(request).runtime, who, external_id, before, PAGE_SIZE)
    return {"integration": integration, "fires": found, "next_before": found[-1].id if more else None}


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidInput(f"'{name}' must be a non-negative integer.", field=name)
    return int(raw)
