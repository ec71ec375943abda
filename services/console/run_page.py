"""The run page: counts, message, timeline, changed assets and Cancel, kept live over Server-Sent Events.

The stream subscribes to the API process's run-event hub (the database NOTIFYs it; nothing polls), and on each of
the run's events sends the page's live part re-rendered (htmx swaps it in). It ends with an `end` event once the
run is terminal, which closes the browser's EventSource (sse-close) instead of letting it reconnect.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_sse import sse_response

from services.api.context import deps
from services.api.run_streams import HEARTBEAT_S, HUB, next_or_gone
from services.console.session import session
from services.core import ingestion, timeline
from services.core.errors import Gone, InvalidInput
from services.core.runs import RunStatus

TIMELINE_LIMIT = 500  # events shown; a longer timeline is in the API (`.../runs/{id}/events`, paged)
CHANGES_LIMIT = 100  # changed asset keys shown; all of them: `.../runs/{id}/changes`
RENDER_EVERY_S = 1.0  # the live part is rendered at most this often
routes = web.RouteTableDef()


@routes.get("/integrations/{externalId}/runs/{runId}", name="run_page")
@aiohttp_jinja2.template("run.html")
async def run_page(request: web.Request) -> dict[str, Any]:
    return await _live_context(request)


@routes.get("/integrations/{externalId}/runs/{runId}/live", name="run_live")
async def run_live(request: web.Request) -> web.StreamResponse:
    run_id = _run_id(request)
    hub = request.config_dict[HUB]
    with hub.subscribe(lambda event: event.run_id == run_id) as subscription:  # before reading: nothing is missed
        context = await _live_context(request)  # visibility is checked here, before the stream opens
        async with sse_response(request, ping_interval=HEARTBEAT_S, headers={"X-Accel-Buffering": "no"}) as out:
            gone = asyncio.ensure_future(out.wait())  # ends when the client went away (a ping failed)
            try:
                while True:
                    html = aiohttp_jinja2.render_string("run_live.html", request, context)
                    await out.send(html, event="run")
                    if context["run"].status.is_terminal:
                        await out.send("", event="end")
                        break
                    if await next_or_gone(subscription, gone) is None:
                        break  # the client left, or it lagged too far behind: its EventSource reconnects
                    # What else happens within a second is shown by the same render: a run of a thousand asset
                    # batches costs a page a render a second, not a thousand renders of a growing timeline.
                    await asyncio.sleep(RENDER_EVERY_S)
                    if not subscription.discard_queued():
                        break
                    context = await _live_context(request)
            finally:
                gone.cancel()
    return out


async def _live_context(request: web.Request) -> dict[str, Any]:
    external_id, run_id = request.match_info["externalId"], _run_id(request)
    who, rt = session(request).principal, deps(request).runtime
    integration = await deps(request).integrations.get(who, external_id)
    run = await ingestion.get_run(rt, who, external_id, run_id)
    events, more_events = await timeline.run_timeline(rt, who, external_id, run_id, 0, TIMELINE_LIMIT)
    changes_gone = None
    try:
        changes, more_changes = await timeline.run_changes(rt, who, external_id, run_id, (0, 0, 0), CHANGES_LIMIT)
    except Gone as gone:  # compacted by the run log's retention: say so, never "No asset changed."
        changes, more_changes, changes_gone = [], False, gone.detail
    return {
        "integration": integration, "run": run, "events": events, "more_events": more_events, "changes": changes,
        "more_changes": more_changes, "changes_gone": changes_gone,
        "may_cancel": who.can_edit(integration.owning_team_id) and run.status.is_active,
        "live": run.status.is_active, "RunStatus": RunStatus,
    }  # fmt: skip


def _run_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["runId"])
    except ValueError:
        raise InvalidInput("That is not a run id.") from None
