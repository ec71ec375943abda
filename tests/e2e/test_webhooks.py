"""Webhooks over HTTP: team scoping and validation of subscriptions, and a notifier process killed with SIGKILL
while delivering (the notification still arrives, once restarted, with the same delivery id)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.notifier.signing import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from tests.e2e.conftest import Client, Stack, postgres_integration
from tests.support import eventually

pytestmark = pytest.mark.e2e

# The notifier of these tests may connect to loopback only, whatever subscriptions the database holds.
NOTIFIER_ENV = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_TIMEOUT_SECONDS": "5",  # the killed attempt must still be in flight when the kill comes
    "WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
    "WEBHOOK_RETRY_MAX_SECONDS": "1",
    "WEBHOOK_POLL_SECONDS": "0.2",
}


async def new_team(client: Client) -> str:
    team = f"hooks-{uuid.uuid4().hex[:8]}"
    status, body, _ = await client.call("POST", "/api/teams", json={"externalId": team, "name": team})
    assert status == 201, body
    return team


async def new_key(client: Client, team: str, *permissions: str) -> str:
    grant = {"teamExternalId": team, "permissions": list(permissions)}
    status, body, _ = await client.call("POST", "/api/api-keys", json={"name": f"key-{team}", "teams": [grant]})
    assert status == 201, body
    return str(body["key"])


async def test_another_team_s_key_can_neither_see_nor_change_a_subscription(client):
    ours, theirs = await new_team(client), await new_team(client)
    editor = await new_key(client, ours, "INGESTION_VIEW", "INGESTION_EDIT")
    viewer = await new_key(client, ours, "INGESTION_VIEW")
    stranger = await new_key(client, theirs, "INGESTION_VIEW", "INGESTION_EDIT")
    status, created, headers = await client.call(
        "POST", "/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "teamExternalId": ours}, key=editor
    )
    assert status == 201, created
    assert created["secret"].startswith("whsec_") and headers["Location"] == f"/api/webhooks/{created['id']}"
    path = f"/api/webhooks/{created['id']}"

    status, shown, _ = await client.call("GET", path, key=editor)
    assert status == 200 and "secret" not in shown and shown["teamExternalId"] == ours
    for method, suffix, body in (("GET", "", None), ("PATCH", "", {"enabled": False}), ("DELETE", "", None),
                                 ("GET", "/deliveries", None)):  # fmt: skip
        status, problem, _ = await client.call(method, path + suffix, json=body, key=stranger)
        assert status == 404, (method, suffix, problem)
    assert created["id"] not in {w["id"] for w in (await client.call("GET", "/api/webhooks", key=stranger))[1]}
    assert created["id"] in {w["id"] for w in (await client.call("GET", "/api/webhooks", key=viewer))[1]}
    assert created["id"] in {w["id"] for w in (await client.call("GET", "/api/webhooks"))[1]}  # an org owner
    assert (await client.call("PATCH", path, json={"enabled": False}, key=viewer))[0] == 403
    assert (await client.call("DELETE", path, key=viewer))[0] == 403
    for body in ({"url": "http://127.0.0.1:9/x", "teamExternalId": ours}, {"url": "http://127.0.0.1:9/x"}):
        assert (await client.call("POST", "/api/webhooks", json=body, key=stranger))[0] == 403

    status, rotated, _ = await client.call("PATCH", path, json={"rotateSecret": True}, key=editor)
    assert status == 200 and rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert (await client.call("DELETE", path, key=editor))[0] == 204
    assert (await client.call("GET", path, key=editor))[0] == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"url": "ftp://127.0.0.1/hook"}, 422, "url"),
        ({"url": "http://user:secret@127.0.0.1/hook"}, 422, "url"),
        ({"url": "http://127.0.0.1/hook", "events": ["run.started"]}, 422, "events.0"),
        ({"url": "http://127.0.0.1/hook", "events": []}, 422, "events"),
        ({"url": "http://127.0.0.1/hook", "teamExternalId": "no-such-team"}, 422, "teamExternalId"),
        ({"url": "http://127.0.0.1/hook", "secret": "mine"}, 422, "secret"),
        ({}, 422, "url"),
    ],
)
async def test_invalid_subscriptions_are_refused_naming_the_field(client, body, status, field):
    got, problem, headers = await client.call("POST", "/api/webhooks", json=body)
    assert got == status, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert field in problem["detail"] or any(e["field"] == field for e in problem.get("errors", []))


async def test_malformed_requests_are_400s(client):
    assert (await client.call("POST", "/api/webhooks", data=b'{"url": '))[0] == 400
    assert (await client.call("GET", "/api/webhooks/not-a-uuid"))[0] == 400
    assert (await client.call("GET", f"/api/webhooks/{uuid.uuid4()}/deliveries?after=nonsense"))[0] == 400


class Receiver:
    """On loopback: holds the first request open (the notifier is killed meanwhile), answers 200 to the rest."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.released = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        seen = (dict(request.headers), await request.read())
        self.requests.append(seen)
        if len(self.requests) == 1:
            await self.released.wait()  # the notifier is killed meanwhile, and its connection with it
        return web.Response(status=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield found, str(server.make_url("/hook"))
    found.released.set()
    await server.close()


async def test_a_notifier_killed_while_delivering_delivers_after_its_restart(stack: Stack, client, db, shop_dsn,
                                                                             receiver):  # fmt: skip
    hook, url = receiver
    team = await new_team(client)
    name = f"hooked-{uuid.uuid4().hex[:8]}"
    integration = postgres_integration(shop_dsn, name, owningTeamExternalId=team)
    assert (await client.call("POST", "/api/integrations", json=integration))[0] == 201
    status, webhook, _ = await client.call(
        "POST", "/api/webhooks", json={"url": url, "teamExternalId": team, "events": ["run.succeeded"]}
    )
    assert status == 201, webhook
    # Only this test's subscription is delivered to: other tests' ones (fuzzed or not) stay quiet.
    await db.execute("UPDATE webhooks SET enabled = false WHERE id <> $1", uuid.UUID(webhook["id"]))
    stack.start("notifier", **NOTIFIER_ENV)
    try:
        await client.call("POST", f"/api/integrations/{name}/run")
        await client.wait_for_run(name, {"SUCCESS"})
        await eventually(lambda: _true(len(hook.requests) >= 1), timeout=30)
        stack.stop("notifier", signal.SIGKILL)  # mid-delivery: the receiver holds the request

        # While no notifier runs, a second run ends too: its event waits on the topic.
        await client.call("POST", f"/api/integrations/{name}/run")
        await client.wait_for_run(name, {"SUCCESS"})
        stack.start("notifier", **NOTIFIER_ENV)

        async def both_delivered() -> list[dict[str, Any]] | None:
            _, found, _ = await client.call("GET", f"/api/webhooks/{webhook['id']}/deliveries")
            return found if len(found) == 2 and all(d["status"] == "DELIVERED" for d in found) else None

        second, first = await eventually(both_delivered, timeout=60)
        # Its ops port: ready (database, run-event partitions assigned), and the attempts counted by outcome.
        async with aiohttp.ClientSession() as session:
            async with session.get(stack.ops_url("notifier", "/readyz")) as response:
                assert response.status == 200, await response.text()
            async with session.get(stack.ops_url("notifier", "/metrics")) as response:
                metrics = await response.text()
        assert 'icp_webhook_attempts_total{outcome="delivered"} 2.0' in metrics, metrics
    finally:
        if "notifier" in stack.processes:
            stack.stop("notifier")
    # The attempt the kill cut short is recorded without an outcome; the next one, after its lease, got a 200.
    assert [(a["statusCode"], a["durationMs"] is None) for a in first["attempts"]] == [(None, True), (200, False)]
    assert [a["statusCode"] for a in second["attempts"]] == [200]
    ids = [headers[DELIVERY_HEADER] for headers, _ in hook.requests]
    assert sorted(ids) == sorted([first["id"], first["id"], second["id"]])  # one id per notification, kept on retry
    for headers, body in hook.requests:
        assert verify(webhook["secret"], headers[SIGNATURE_HEADER], body, now=time.time())


async def _true(value: bool) -> bool:
    return value
