"""Our own endpoints for what the Entropy seed leaves to its UI: integration writes, teams, API keys."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.api.context import deps, principal
from services.api.entropy import integration_json
from services.api.params import json_body, uuid_path
from services.api.render import json_default
from services.core.access import ApiKeyInfo, NewApiKey, NewTeam, Team
from services.core.connection_tests import ConnectionTest
from services.core.integrations import ConnectionToTest, IntegrationFields, NewIntegration

routes = web.RouteTableDef()


def _json(body: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers=headers or None, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=json_default)


def team_json(team: Team) -> dict[str, Any]:
    return {"externalId": team.external_id, "name": team.name, "createdAt": team.created_at}


def api_key_json(key: ApiKeyInfo) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "organizationOwner": key.org_owner,
        "teams": [{"teamExternalId": g.team_external_id, "permissions": g.permissions} for g in key.teams],
        "createdAt": key.created_at,
        "revokedAt": key.revoked_at,
    }


@routes.post("/integrations")
async def create_integration(request: web.Request) -> web.Response:
    spec = await json_body(request, NewIntegration)
    created = await deps(request).integrations.create(principal(request), spec)
    location = f"/api/integrations/{created.external_id}"
    return _json(integration_json(created, with_configuration=True), 201, Location=location)


@routes.post("/integrations/test")
async def test_connection(request: web.Request) -> web.Response:
    """Try a configuration through a connector before saving it."""
    spec = await json_body(request, ConnectionToTest)
    return _json(connection_test_json(await deps(request).integrations.test_unsaved(principal(request), spec)))


@routes.post("/integrations/{externalId}/test")
async def test_saved_connection(request: web.Request) -> web.Response:
    tested = await deps(request).integrations.test_saved(principal(request), request.match_info["externalId"])
    return _json(connection_test_json(tested))


def connection_test_json(test: ConnectionTest) -> dict[str, Any]:
    return {
        "testId": test.id,
        "status": "PASSED" if test.passed else "FAILED",
        "message": test.message,
        "durationMs": test.duration_ms,
        "testedAt": test.finished_at,
    }


@routes.patch("/integrations/{externalId}")
async def update_integration(request: web.Request) -> web.Response:
    changes = await json_body(request, IntegrationFields)
    updated = await deps(request).integrations.update(principal(request), request.match_info["externalId"], changes)
    return _json(integration_json(updated, with_configuration=True))


@routes.delete("/integrations/{externalId}")
async def delete_integration(request: web.Request) -> web.Response:
    await deps(request).integrations.delete(principal(request), request.match_info["externalId"])
    return web.Response(status=204)


@routes.post("/teams")
async def create_team(request: web.Request) -> web.Response:
    team = await deps(request).access.create_team(principal(request), await json_body(request, NewTeam))
    return _json({"externalId": team.external_id, "name": team.name}, 201)


@routes.get("/teams")
async def list_teams(request: web.Request) -> web.Response:
    return _json([team_json(team) for team in await deps(request).access.list_teams(principal(request))])


@routes.post("/api-keys")
async def create_api_key(request: web.Request) -> web.Response:
    issued = await deps(request).access.create_key(principal(request), await json_body(request, NewApiKey))
    body = {"id": str(issued.id), "name": issued.name, "key": issued.key,
            "message": "Store this key now: it is shown only once."}  # fmt: skip
    return _json(body, 201)


@routes.get("/api-keys")
async def list_api_keys(request: web.Request) -> web.Response:
    return _json([api_key_json(key) for key in await deps(request).access.list_keys(principal(request))])


@routes.delete("/api-keys/{keyId}")
async def revoke_api_key(request: web.Request) -> web.Response:
    await deps(request).access.revoke_key(principal(request), uuid_path(request, "keyId"))
    return web.Response(status=204)
