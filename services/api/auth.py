"""API key authentication: `x-api-key` or `Authorization: Bearer`, required on every /api path."""

from __future__ import annotations

from aiohttp import web

from services.api.context import PRINCIPAL_KEY, deps
from services.api.problems import Handler, problem

BAD_KEY = "The API key was not found or not the expected value."
NO_KEY = "An API key is required: send it in the 'x-api-key' header or as 'Authorization: Bearer <key>'."


def presented_key(request: web.Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    key = presented_key(request)
    if key is None:
        return problem(403, NO_KEY, request)
    found = await deps(request).access.authenticate(key)
    if found is None:
        return problem(403, BAD_KEY, request)
    request[PRINCIPAL_KEY] = found
    return await handler(request)
