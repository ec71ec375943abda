"""The system page (organization owners): each service's readiness, consumer lag, outbox depth, dead letters, the
oldest queued run; what `GET /api/system/status` and `icp doctor` report, from the same core function."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.api.context import deps
from services.api.system import LAG_READER
from services.console.session import session
from services.core.system import system_status

routes = web.RouteTableDef()


@routes.get("/system", name="system")
@aiohttp_jinja2.template("system.html")
async def system(request: web.Request) -> dict[str, Any]:
    found = await system_status(deps(request).runtime, session(request).principal, request.app[LAG_READER])
    return {"status": found, "lagging": [lag for lag in found.consumer_lag if lag.lag > 0]}
