"""A run's timeline, its changes, its source warnings and its live event streams, over HTTP with every service
running, as a user (or the CLI and console) reads them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import ADMIN_KEY, Client, Stack, postgres_integration, wait_for_api
from tests.support import SHOP_ASSETS, SHOP_COUNTED, create_shop_database, eventually, recreate_database

pytestmark = pytest.mark.e2e

TERMINAL = {"SUCCESS", "FAILED", "CANCELLED"}


async def run_once(client: Client, external_id: str, key: str | None = None) -> dict[str, Any]:
    status, accepted, _ = await client.call("POST", f"/api/integrations/{external_id}/run", key=key)
    assert status == 202, accepted
    run_id = accepted["ingestionRunId"]

    async def ended() -> dict[str, Any] | None:
        _, run, _ = await client.call("GET", f"/api/integrations/{external_id}/runs/{run_id}", key=key)
        return run if run["status"] in TERMINAL else None

    return await eventually(ended, timeout=60)


async def all_pages(client: Client, path: str, key: str | None = None) -> list[dict[str, Any]]:
    """Every item of a listing, following its Link rel="next" headers."""
    items: list[dict[str, Any]] = []
    while True:
        status, page, headers = await client.call("GET", path, key=key)
        assert status == 200, page
        items.extend(page)
        link = headers.get("Link")
        if link is None:
            return items
        url = urlsplit(link[1 : link.index(">")])
        path = f"{url.path}?{url.query}"


async def read_stream(stack: Stack, path: str, into: list[tuple[int, dict[str, Any]]], key: str = ADMIN_KEY,
                      last_event_id: int | None = None, timeout: float = 60,
                      opened: asyncio.Event | None = None) -> None:  # fmt: skip
    """Read Server-Sent Events into `into` (id, data) until the server closes the stream; `opened` is set once the
    server answered (it subscribes before it answers)."""
    headers = {"x-api-key": key} | ({"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(stack.url + path, headers=headers) as response:
            assert response.status == 200 and response.content_type == "text/event-stream", await response.text()
            if opened is not None:
                opened.set()
            event_id, data = "", []
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and data:
                    into.append((int(event_id), json.loads("\n".join(data))))
                    data = []


async def test_a_crawl_has_a_short_timeline_from_trigger_to_outcome_with_asset_batches_as_counts(client, stack):
    source = await create_shop_database(stack.dsn, "source_timeline_e2e")
    assert (await client.call("POST", "/api/integrations", json=postgres_integration(source, "timeline-e2e")))[0] == 201
    run = await run_once(client, "timeline-e2e")
    assert run["status"] == "SUCCESS", run

    path = f"/api/integrations/timeline-e2e/runs/{run['ingestionRunId']}/events"
    status, events, _ = await client.call("GET", path)
    assert status == 200
    types = [e["type"] for e in events]
    assert types[:2] == ["run.requested.v1", "run.started.v1"] and types[-1] == "run.succeeded.v1", types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["occurredAt"] for e in events] == sorted(e["occurredAt"] for e in events)
    assert events[0]["details"]["trigger"] == "manual" and "requested_by" in events[0]["details"]
    assert events[-1]["details"]["counts"]["assets_created"] == SHOP_COUNTED
    batches = [e["details"] for e in events if e["type"] == "run.assets_changed.v1"]
    assert batches and all(set(b) == {"upserted", "deleted", "change"} for b in batches)  # counts, not assets
    assert sum(b["upserted"] for b in batches) == SHOP_ASSETS and {b["change"] for b in batches} == {"created"}
    assert await all_pages(client, path + "?limit=2") == events


async def test_an_older_runs_changes_stay_its_own_after_newer_runs_changed_the_same_assets(client, stack):
    source = await create_shop_database(stack.dsn, "source_changes_e2e")
    assert (await client.call("POST", "/api/integrations", json=postgres_integration(source, "changes-e2e")))[0] == 201
    database = "source_changes_e2e"
    first = await run_once(client, "changes-e2e")
    conn = await asyncpg.connect(source)
    try:
        await conn.execute("COMMENT ON TABLE sales.customers IS 'Who buys'; DROP VIEW sales.big_orders")
        second = await run_once(client, "changes-e2e")
        await conn.execute("CREATE VIEW sales.big_orders AS SELECT id, total FROM sales.orders WHERE total > 100")
        third = await run_once(client, "changes-e2e")
    finally:
        await conn.close()
    assert [r["status"] for r in (first, second, third)] == ["SUCCESS"] * 3

    def changes_path(run: dict[str, Any]) -> str:
        return f"/api/integrations/changes-e2e/runs/{run['ingestionRunId']}/changes?limit=7"

    created = await all_pages(client, changes_path(first))
    assert len(created) == len({c["key"] for c in created}) == SHOP_ASSETS  # keyset pages: no gap, no repeat
    assert {c["change"] for c in created} == {"created"}
    assert {"key": f"{database}/sales/big_orders", "kind": "view", "change": "created"} in created

    changed = await all_pages(client, changes_path(second))
    assert {"key": f"{database}/sales/customers", "kind": "table", "change": "updated"} in changed
    deleted = {c["key"] for c in changed if c["change"] == "deleted"}
    view = f"{database}/sales/big_orders"
    assert deleted == {view, f"{view}/id", f"{view}/customer_id", f"{view}/total"}
    assert len(changed) == second["assetsUpdated"] + second["assetsDeleted"]
    # The view came back in the third run: the store now names the third as its creator, the second stays a delete.
    assert {"key": view, "kind": "view", "change": "created"} in await all_pages(client, changes_path(third))
    assert {"key": view, "kind": "view", "change": "deleted"} in await all_pages(client, changes_path(second))

    status, problem, _ = await client.call("GET", changes_path(first) + "&after=not-a-cursor")
    assert status == 400 and problem["errors"][0]["field"] == "after"


async def test_source_warnings_are_recorded_on_the_run_capped_with_a_count_of_the_rest(client, stack):
    role, password = f"timeline_reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    source = await recreate_database(stack.dsn, "source_warnings_e2e")
    admin = await asyncpg.connect(source)
    try:
        # A schema the crawling user may not use, with 105 tables it may not read: 106 warnings.
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; CREATE SCHEMA locked; "
                            "DO $$ BEGIN FOR i IN 1..105 LOOP EXECUTE format('CREATE TABLE locked.t%s (id int)', i); "
                            "END LOOP; END $$")  # fmt: skip
        body = postgres_integration(source, "warnings-e2e")
        body["configuration"] |= {"username": role, "includeSchemas": ["locked"]}
        body["credentials"] = {"password": password}
        assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
        run = await run_once(client, "warnings-e2e")
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.close()
        cleanup = await asyncpg.connect(stack.dsn)
        await cleanup.execute('DROP DATABASE "source_warnings_e2e" WITH (FORCE)')
        await cleanup.execute(f"DROP ROLE {role}")
        await cleanup.close()
    assert run["status"] == "SUCCESS" and "and 101 more (in the run's events)" in run["message"], run
    _, events, _ = await client.call("GET", f"/api/integrations/warnings-e2e/runs/{run['ingestionRunId']}/events")
    reported = [e["details"] for e in events if e["type"] == "run.warnings_reported.v1"]
    warnings = [w for r in reported for w in r["warnings"]]
    assert len(warnings) == 100 and reported[-1]["dropped"] == 6
    assert warnings[0].startswith("Schema locked: user ") and "no USAGE privilege" in warnings[0]
    assert "table locked.t1: user" in warnings[1] and "no SELECT privilege" in warnings[1]


async def test_a_run_stream_replays_then_follows_live_closes_at_the_end_and_resumes_after_last_event_id(
    client, stack, shop_dsn, locked_view
):
    assert (await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "stream-e2e")))[0] == 201
    _, accepted, _ = await client.call("POST", "/api/integrations/stream-e2e/run")
    path = f"/api/integrations/stream-e2e/runs/{accepted['ingestionRunId']}/stream"
    received: list[tuple[int, dict[str, Any]]] = []
    reader = asyncio.create_task(read_stream(stack, path, received))

    async def seen(event_type: str) -> bool:
        assert not reader.done() or reader.exception() is None
        return any(data["type"] == event_type for _, data in received)

    await eventually(lambda: seen("run.started.v1"), timeout=30)  # the crawl now waits on the locked view
    assert (await client.call("POST", "/api/integrations/stream-e2e/cancel"))[0] == 204
    await asyncio.wait_for(reader, timeout=30)  # the stream closes by itself once the run ended
    types = [data["type"] for _, data in received]
    assert types[0] == "run.requested.v1" and types[-1] == "run.cancelled.v1" and "run.cancel_requested.v1" in types
    assert [i for i, _ in received] == [data["position"] for _, data in received] == sorted({i for i, _ in received})

    resumed: list[tuple[int, dict[str, Any]]] = []
    await asyncio.wait_for(read_stream(stack, path, resumed, last_event_id=received[1][0]), timeout=30)
    assert resumed == received[2:]
    after_the_end: list[tuple[int, dict[str, Any]]] = []
    await asyncio.wait_for(read_stream(stack, path, after_the_end, last_event_id=received[-1][0]), timeout=30)
    assert after_the_end == []


async def test_another_teams_key_sees_nothing_of_a_run_and_the_event_stream_shows_each_key_its_own(client, stack):
    for team in ("tl-red", "tl-blue"):
        assert (await client.call("POST", "/api/teams", json={"externalId": team, "name": team}))[0] in (201, 409)
    keys = {}
    for team in ("tl-red", "tl-blue"):
        source = await create_shop_database(stack.dsn, f"source_{team.replace('-', '_')}")
        body = postgres_integration(source, f"{team}-e2e", owningTeamExternalId=team)
        assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
        grant = [{"teamExternalId": team, "permissions": ["INGESTION_VIEW", "INGESTION_EDIT"]}]
        status, key, _ = await client.call("POST", "/api/api-keys", json={"name": team, "teams": grant})
        assert status == 201
        keys[team] = key["key"]
    red = await run_once(client, "tl-red-e2e", key=keys["tl-red"])
    run_path = f"/api/integrations/tl-red-e2e/runs/{red['ingestionRunId']}"
    for suffix in ("/events", "/changes", "/stream"):
        status, problem, headers = await client.call("GET", run_path + suffix, key=keys["tl-blue"])
        assert status == 404 and headers["Content-Type"].startswith("application/problem+json"), (suffix, problem)

    everything: list[tuple[int, dict[str, Any]]] = []  # the org owner's live stream, from now on
    opened = asyncio.Event()
    live = asyncio.create_task(read_stream(stack, "/api/events/stream", everything, opened=opened))
    blue_replay: list[tuple[int, dict[str, Any]]] = []  # blue's, from the log's beginning
    replay = asyncio.create_task(read_stream(stack, "/api/events/stream", blue_replay, key=keys["tl-blue"],
                                             last_event_id=0))  # fmt: skip
    try:
        await asyncio.wait_for(opened.wait(), timeout=30)  # subscribed: what comes now is streamed
        blue = await run_once(client, "tl-blue-e2e", key=keys["tl-blue"])

        def ended_in(events: list[tuple[int, dict[str, Any]]]) -> bool:
            return any(d["ingestionRunId"] == blue["ingestionRunId"] and d["type"] == "run.succeeded.v1"
                       for _, d in events)  # fmt: skip

        await eventually(lambda: asyncio.sleep(0, result=ended_in(everything) and ended_in(blue_replay)), timeout=30)
    finally:
        live.cancel()
        replay.cancel()
        await asyncio.gather(live, replay, return_exceptions=True)
    assert {d["integrationExternalId"] for _, d in blue_replay} == {"tl-blue-e2e"}
    assert [d["seq"] for _, d in blue_replay] == list(range(1, len(blue_replay) + 1))
    assert {d["ingestionRunId"] for _, d in everything if d["integrationExternalId"] == "tl-blue-e2e"} == {
        blue["ingestionRunId"]
    }


async def test_a_client_leaving_the_event_stream_is_no_server_error(client, stack):
    # Closing a stream is how every stream ends for its client: no 500 in the metrics, no error in the log.
    source = await create_shop_database(stack.dsn, "source_stream_leaving_e2e")
    integration = postgres_integration(source, "stream-leaving-e2e")
    assert (await client.call("POST", "/api/integrations", json=integration))[0] == 201
    async with aiohttp.ClientSession() as session:
        response = await session.get(stack.url + "/api/events/stream", headers={"x-api-key": ADMIN_KEY})
        assert response.status == 200
        await response.content.readline()  # ": open": subscribed
        response.connection.transport.abort()  # the client goes away, as a closed browser tab does
        response.close()
    await run_once(client, "stream-leaving-e2e")  # events the stream can no longer write

    async def stream_ended() -> list[str] | None:  # recorded once the server noticed, at its next write
        async with aiohttp.ClientSession() as session, session.get(stack.ops_url("api", "/metrics")) as answer:
            text = await answer.text()
        found = [line for line in text.splitlines() if 'route="/api/events/stream"' in line and "_count{" in line]
        return found or None

    streamed = await eventually(stream_ended, timeout=30)
    assert all('status="200"' in line for line in streamed), streamed


async def test_open_streams_end_when_the_api_stops_so_the_stop_does_not_wait_for_them(client, stack):
    # Without ending them, aiohttp waits up to 60 s for the stream handlers: the stop would end in a kill.
    opened = asyncio.Event()
    received: list[tuple[int, dict[str, Any]]] = []
    reading = asyncio.create_task(read_stream(stack, "/api/events/stream", received, opened=opened, timeout=120))
    await asyncio.wait_for(opened.wait(), timeout=30)
    api = stack.processes["api"]
    await asyncio.to_thread(stack.stop, "api")  # SIGTERM; a kill after 15 s
    try:
        assert api.returncode == 0, api.returncode
        await asyncio.wait_for(reading, timeout=10)  # the client saw its stream end
    finally:
        stack.start("api")
        await wait_for_api(stack)


async def test_a_revoked_keys_event_stream_ends_instead_of_showing_what_the_key_may_no_longer_see(client, stack):
    assert (await client.call("POST", "/api/teams", json={"externalId": "tl-revoked", "name": "r"}))[0] in (201, 409)
    grant = [{"teamExternalId": "tl-revoked", "permissions": ["INGESTION_VIEW"]}]
    status, key, _ = await client.call("POST", "/api/api-keys", json={"name": "soon revoked", "teams": grant})
    assert status == 201
    opened = asyncio.Event()
    received: list[tuple[int, dict[str, Any]]] = []
    reading = asyncio.create_task(read_stream(stack, "/api/events/stream", received, key=key["key"], opened=opened))
    try:
        await asyncio.wait_for(opened.wait(), timeout=30)
        assert (await client.call("DELETE", f"/api/api-keys/{key['id']}"))[0] == 204
        await asyncio.wait_for(reading, timeout=45)  # the key is checked again every 15 s: the stream ends
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
