"""GET /api/system/status: the readiness every process records, consumer lag, outbox, queue, dead letters
(organization-owner keys only)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.api.auth import auth_middleware
from services.api.context import deps, principal
from services.api.problems import ENTROPY, STYLE, problem_middleware
from services.api.render import json_default
from services.core.system import LagReader, SystemStatus, system_status
from shared.group_lag import group_lag
from shared.settings import KafkaSettings

LAG_READER: web.AppKey[LagReader] = web.AppKey("lag_reader")
routes = web.RouteTableDef()


def system_app(kafka: KafkaSettings, read_lag: LagReader | None = None) -> web.Application:
    """Mounted at /api/system: our dialect's auth and problem+json, plus the Kafka settings the lag needs."""
    app = web.Application(middlewares=[problem_middleware, auth_middleware])
    app[STYLE] = ENTROPY
    app[LAG_READER] = read_lag or (lambda: group_lag(kafka))
    app.router.add_routes(routes)
    return app


@routes.get("/status")
async def status(request: web.Request) -> web.Response:
    found = await system_status(deps(request).runtime, principal(request), request.app[LAG_READER])
    return web.json_response(system_status_json(found), dumps=lambda v: json.dumps(v, default=json_default))


def system_status_json(found: SystemStatus) -> dict[str, Any]:
    queued = found.oldest_queued_run
    return {
        "ready": found.ready,
        "notReady": found.not_ready,
        "services": [
            {"service": p.service, "instance": p.instance, "ready": p.ready, "stale": p.stale, "checks": p.checks,
             "seenAt": p.seen_at}
            for p in found.processes
        ],
        "consumerLag": [
            {"group": lag.group, "topic": lag.topic, "partition": lag.partition, "lag": lag.lag}
            for lag in found.consumer_lag
        ],
        "consumerLagError": found.consumer_lag_error,
        "outbox": {"depth": found.outbox.depth, "oldestAgeSeconds": found.outbox.oldest_age_s},
        "oldestQueuedRun": None if queued is None else {
            "ingestionRunId": queued.run_id, "integrationExternalId": queued.integration_external_id,
            "requestedAt": queued.requested_at,
        },
        "deadLetters": {"reports": found.report_dead_letters, "outbox": found.outbox_dead_letters},
    }  # fmt: skip
