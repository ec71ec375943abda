"""The web console's sub-application (mounted by the API at /console): templates, static assets, sessions, pages.

Server-rendered with jinja2 (autoescaped), made live by htmx and its SSE extension (vendored under static/, no
build step, no CDN). Its views call the same core functions as the API's handlers, under the same team scoping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from services.api.problems import Handler
from services.api.system import LAG_READER
from services.console import format, pages, run_page, system_page
from services.console.session import (
    CSRF_FIELD,
    SESSION,
    SESSIONS,
    SessionCipher,
    login,
    login_form,
    logout,
    session_middleware,
)
from services.console.settings import ConsoleSettings
from services.core.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from services.core.system import LagReader
from shared.group_lag import group_lag
from shared.settings import KafkaSettings

HERE = Path(__file__).parent
log = structlog.get_logger()
# Scripts, styles and forms only from here, never framed: what an injected tag could do is limited even if
# escaping were ever missed.
CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
_STATUS: list[tuple[type[DomainError], int]] = [(NotFound, 404), (Forbidden, 403), (Conflict, 409), (InvalidInput, 400)]


def create_console(
    settings: ConsoleSettings, kafka: KafkaSettings, read_lag: LagReader | None = None
) -> web.Application:
    """The console; `kafka` is where the system page reads consumer lag (`read_lag` replaces that in tests)."""
    # /console (no slash) redirects to /console/: the sub-application's routes all start below its prefix.
    slash = web.normalize_path_middleware(append_slash=True, merge_slashes=False)
    app = web.Application(middlewares=[slash, headers_middleware, error_middleware, session_middleware])
    app[SESSIONS] = SessionCipher(settings)
    app[LAG_READER] = read_lag or (lambda: group_lag(kafka))
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined,
        context_processors=[_session_context], filters=format.FILTERS,
    )  # fmt: skip
    env.globals["csrf_field"] = CSRF_FIELD
    login_page = app.router.add_resource("/login", name="login")  # one (public) resource: the form and its POST
    login_page.add_route("GET", login_form)
    login_page.add_route("POST", login)
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_static("/static", HERE / "static", name="static")
    app.router.add_routes(pages.routes)
    app.router.add_routes(run_page.routes)
    app.router.add_routes(system_page.routes)
    return app


async def _session_context(request: web.Request) -> dict[str, Any]:
    return {"session": request.get(SESSION)}


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as http:
        http.headers.update(_security_headers())
        raise
    if not response.prepared:  # a live stream has sent its headers already
        response.headers.update(_security_headers())
        resource = request.match_info.route.resource
        if resource is None or resource.name != "static":  # pages show one key's view: never kept in a cache
            response.headers["Cache-Control"] = "no-store"
    return response


def _security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors as a page a person reads (the API's dialects answer problem+json instead)."""
    try:
        return await handler(request)
    except DomainError as error:
        status = next((code for kind, code in _STATUS if isinstance(error, kind)), 500)
        if status == 500:
            raise
        return aiohttp_jinja2.render_template("error.html", request, {"message": error.detail}, status=status)
