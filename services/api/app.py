"""The aiohttp application factory: wiring, middlewares, routes, resources opened in cleanup_ctx."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from aiohttp import web

from services.api import (
    admin,
    asyncapi,
    entropy,
    immuta_v1,
    immuta_v2,
    run_streams,
    secoda,
    secoda_catalog,
    system,
    webhooks,
)
from services.api.auth import auth_middleware
from services.api.context import DEPS, ApiDeps
from services.api.params import path_text_middleware
from services.api.problems import (
    ENTROPY,
    IMMUTA,
    SECODA,
    STYLE,
    ErrorStyle,
    Handler,
    problem_middleware,
    request_context_middleware,
)
from services.api.settings import ApiSettings
from services.console.app import create_console
from services.console.settings import ConsoleSettings
from services.core.access import AccessService
from services.core.catalog import CatalogService
from services.core.connection_tests import ConnectionTests
from services.core.connections import ConnectionService
from services.core.crypto import CredentialCipher
from services.core.data_objects import ObjectService
from services.core.ingestion import Runtime
from services.core.integrations import IntegrationService
from services.core.tasks import TaskService
from services.core.uploads import UploadService
from shared import ops
from shared.metrics import API
from shared.postgres import create_pool

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")
IMMUTA_OPENAPI = {name: Path(__file__).with_name("openapi") / f"{name}.yaml" for name in ("immuta-v2", "immuta-v1")}
DIALECT_OPENAPI = IMMUTA_OPENAPI | {"secoda": Path(__file__).with_name("openapi") / "secoda.yaml"}
log = structlog.get_logger()


def create_app(settings: ApiSettings) -> web.Application:
    # Fail fast on a missing encryption key, before anything listens.
    cipher = CredentialCipher.from_settings(settings.credentials_key, settings.is_dev)
    app = web.Application(
        middlewares=[latency_middleware, request_context_middleware, problem_middleware],
        client_max_size=4 * 1024 * 1024,
    )

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # Every connection opens at start and stays open: a pool that grows on demand made the first second of
        # a burst wait for connections (SCRAM + setup, ~20 ms each; p99 342 ms at 500 GET/s on an idle stack), and
        # asyncpg closed idle ones after 5 min (and armed a timer on every release to do so).
        pool = await create_pool(settings.database_url, min_size=settings.db_pool_size, max_size=settings.db_pool_size,
                                 max_inactive_connection_lifetime=0)  # fmt: skip
        runtime = Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4)
        access = AccessService(runtime)
        if settings.bootstrap_api_key:
            await access.ensure_bootstrap_key(settings.bootstrap_api_key)
        tests = ConnectionTests(runtime, settings.connection_test_timeout_s)
        integrations = IntegrationService(runtime, cipher, settings.allow_private_sources, tests=tests)
        connections = ConnectionService(runtime, integrations)
        app[DEPS] = ApiDeps(
            runtime=runtime, integrations=integrations, access=access, connections=connections,
            objects=ObjectService(runtime, connections), tasks=TaskService(runtime, connections),
            uploads=UploadService(runtime, integrations),
            catalog=CatalogService(runtime),
        )  # fmt: skip
        listener = asyncio.create_task(tests.listen(), name="connection_test_listener")
        try:
            yield
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await pool.close()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(run_streams.event_hub)  # after resources: it listens on the pool
    app.on_shutdown.append(run_streams.end_streams)  # else open streams hold a stop for aiohttp's 60 s
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.yaml", openapi)
    app.router.add_get("/openapi/{name}.yaml", immuta_openapi)
    app.router.add_get("/asyncapi.yaml", asyncapi.serve)
    # One sub-application per dialect, each with its own routes, auth and error rules. A request goes to the
    # longest matching prefix: /api/connections/... is Immuta's, the rest of /api/... ours (Entropy's).
    app.add_subapp("/api/connections", dialect_app(immuta_v2.routes, IMMUTA))
    app.add_subapp("/data", dialect_app(immuta_v1.routes, IMMUTA))
    app.add_subapp("/api/v1", dialect_app(secoda.routes, SECODA, secoda_catalog.routes))
    app.add_subapp("/api/v2", dialect_app(secoda.v2_routes, SECODA))
    app.add_subapp("/api/system", system.system_app(settings))
    # Our own write endpoints first: the dialect's GET /api/integrations/{externalId} must not shadow them.
    app[webhooks.CONFIG] = webhooks.WebhookConfig(cipher, settings.allow_private_webhooks)
    app.add_subapp("/api", dialect_app(admin.routes, ENTROPY, entropy.routes, webhooks.routes))
    app.add_subapp("/console", create_console(ConsoleSettings(), settings))  # the web console: services/console
    return app


@web.middleware
async def latency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTTP latency by route template (never the raw path: bounded label values) and status. Outermost, so
    it times what the client waited for, error rendering included."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as http:
        status = http.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        API.http_request_seconds.labels(request.method, route, str(status)).observe(time.perf_counter() - started)


def ops_server(settings: ApiSettings) -> Callable[[web.Application], AsyncIterator[None]]:
    """The API's ops port (a cleanup_ctx after `resources`, whose pool its readiness check uses)."""

    async def serve(app: web.Application) -> AsyncIterator[None]:
        pool = app[DEPS].runtime.pool
        checks = {"database": ops.database_reachable(pool)}
        async with ops.serving(settings.ops_host, settings.ops_port, ops.Ops(API.registry, checks), "api", pool):
            yield

    return serve


def dialect_app(routes: web.RouteTableDef, style: ErrorStyle, *more: web.RouteTableDef) -> web.Application:
    dialect = web.Application(middlewares=[problem_middleware, auth_middleware, path_text_middleware])
    dialect[STYLE] = style
    for table in (routes, *more):
        dialect.router.add_routes(table)
    return dialect


async def health(request: web.Request) -> web.Response:
    async with request.app[DEPS].runtime.pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return web.json_response({"status": "ok"})


async def openapi(_: web.Request) -> web.Response:
    return web.Response(text=OPENAPI_PATH.read_text(), content_type="application/yaml")


async def immuta_openapi(request: web.Request) -> web.Response:
    path = DIALECT_OPENAPI.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="Served: /openapi.yaml and /openapi/{immuta-v2,immuta-v1,secoda}.yaml")
    return web.Response(text=path.read_text(), content_type="application/yaml")
