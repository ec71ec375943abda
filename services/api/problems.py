"""RFC 7807 problem responses and the middleware that maps domain errors to them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from services.core.errors import (
    Conflict,
    CredentialsRequired,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    field_errors,
)
from shared.errors import is_retriable

log = structlog.get_logger()

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class ErrorStyle:
    """How a dialect reports errors: the status of invalid input and of a missing key, and extra body fields."""

    invalid_input_status: int = 422
    unauthenticated_status: int = 403
    # Immuta's clients (hapi-style) read `message` and `statusCode`: the detail and status again.
    with_message: bool = False
    # The domain names fields as our integrations have them; a dialect shows its own names: whole field names,
    # then replacements in the field and its message (in order).
    fields: tuple[tuple[str, str], ...] = ()
    field_names: tuple[tuple[str, str], ...] = ()

    def wire(self, text: str) -> str:
        text = dict(self.fields).get(text, text)
        for ours, theirs in self.field_names:
            text = text.replace(ours, theirs)
        return text


ENTROPY = ErrorStyle()
IMMUTA = ErrorStyle(
    invalid_input_status=400, unauthenticated_status=401, with_message=True,
    fields=(("credentials", "connection.password"),),
    field_names=(("configuration.host", "connection.hostname"), ("configuration.", "connection."),
                 ("credentials.password", "connection.password"), ("`credentials`", "`connection.password`")),
)  # fmt: skip
SECODA = ErrorStyle(
    invalid_input_status=400, unauthenticated_status=401,
    fields=(("configuration", "credentials"),),
    field_names=(("configuration.username", "credentials.user"), ("configuration.", "credentials.")),
)  # fmt: skip
STYLE = web.AppKey("error_style", ErrorStyle)


def style_of(request: web.Request | None) -> ErrorStyle:
    if request is None:
        return ENTROPY
    return request.config_dict.get(STYLE, ENTROPY)


def problem(status: int, detail: str, request: web.Request | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.path
        if style_of(request).with_message:
            body["message"] = detail
            body["statusCode"] = status
    body.update(extra)
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)


class BadRequest(Exception):
    """Malformed request (query parameter, path segment, JSON body): 400 naming the offending field(s)."""

    def __init__(self, detail: str, field: str | None = None, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors if errors is not None else ([(field, detail)] if field else [])


def validation_problem(error: ValidationError, request: web.Request, prefix: str = "") -> web.Response:
    errors = [{"field": field, "message": message} for field, message in field_errors(error, prefix)]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(style_of(request).invalid_input_status, f"Invalid request body: {detail}", request, errors=errors)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as error:
        if request.writer is not None and request.writer.output_size > 0:
            # Part of a streamed response went out: a problem cannot follow it. Re-raised, aiohttp drops
            # the connection, and the client sees a truncated body instead of a complete-looking one.
            log.exception("response_aborted")
            raise
        return error_response(error, request)


def error_response(error: Exception, request: web.Request) -> web.Response:
    """The problem response for an exception a handler raised."""
    if isinstance(error, BadRequest):
        extra = {"errors": [{"field": field, "message": message} for field, message in error.errors]}
        return problem(400, error.detail, request, **(extra if error.errors else {}))
    if isinstance(error, ValidationError):
        return validation_problem(error, request)
    for kind, status in _DOMAIN_STATUS:
        if isinstance(error, kind):
            style = style_of(request)
            field = style.wire(error.field) if isinstance(error, InvalidInput) and error.field else None
            detail = style.wire(error.detail) if field else error.detail
            extra = {"errors": [{"field": field, "message": detail}]} if field else {}
            if kind is InvalidInput and not isinstance(error, CredentialsRequired):
                status = style.invalid_input_status
            return problem(status, detail, request, **extra)
    if isinstance(error, DomainError):
        log.error("domain_error", error=error.detail)
        return problem(503 if error.retriable else 500, error.detail, request)
    if isinstance(error, web.HTTPException):
        if error.status >= 400:
            return problem(error.status, error.text or error.reason, request)
        raise error
    if is_retriable(error):  # the database is down or restarting (connection refused, admin shutdown, ...)
        log.exception("database_unavailable")
        return problem(503, "The database is unavailable; retry shortly.", request)
    # A bug: log it with the request context, answer in the API's error format.
    log.exception("request_failed")
    return problem(500, "Internal error; it was logged. Retry, and report it if it persists.", request)


_DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [(InvalidInput, 422), (NotFound, 404), (Forbidden, 403),
                                                        (Conflict, 409), (Gone, 410)]  # fmt: skip


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log context per request: every line logged while handling it carries these fields."""
    structlog.contextvars.bind_contextvars(
        request_id=request.headers.get("X-Request-Id") or uuid.uuid4().hex, method=request.method, path=request.path
    )
    try:
        response = await handler(request)
        if response.status >= 500:
            log.warning("request_answered", status=response.status)
        return response
    finally:
        structlog.contextvars.unbind_contextvars("request_id", "method", "path")
