"""API key authentication, on every route of a dialect: `x-api-key`, `Authorization: Bearer <key>`, or a bare
`Authorization: <key>` (Immuta's v1 examples send that)."""

from __future__ import annotations

from aiohttp import web

from services.api.context import PRINCIPAL_KEY, deps
from services.api.problems import Handler, problem, style_of

BAD_KEY = "The API key was not found or not the expected value."
NO_KEY = "An API key is required: send it in the 'x-api-key' header or as 'Authorization: Bearer <key>'."
SCHEMES = ("bearer", "apikey", "token")


def presented_key(request: web.Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "").strip()
    scheme, _, value = authorization.partition(" ")
    if value.strip():
        return value.strip() if scheme.lower() in SCHEMES else None
    return authorization or None  # a bare key


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = presented_key(request)
    status = style_of(request).unauthenticated_status
    if key is None:
        return problem(status, NO_KEY, request)
    found = await deps(request).access.authenticate(key)
    if found is None:
        return problem(status, BAD_KEY, request)
    request[PRINCIPAL_KEY] = found
    return await handler(request)
