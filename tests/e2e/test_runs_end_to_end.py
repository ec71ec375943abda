"""A user's flows over HTTP, with every service a separate process on real Kafka and Postgres."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from shared import topics
from shared.events import RunOwner, run_log_event
from shared.kafka import make_producer
from tests.e2e.conftest import ROOT, SERVICES, Client, Stack, postgres_integration
from tests.support import SHOP_ASSETS, SHOP_COUNTED, create_shop_database, eventually

pytestmark = pytest.mark.e2e


async def wait_started(db, run_id: str) -> None:
    """Until a connector picked the run up (its RUNNING is the connector's, not the queue's)."""

    async def started() -> bool:
        return await db.fetchval("SELECT started_at IS NOT NULL FROM runs WHERE id = $1", uuid.UUID(run_id))

    await eventually(started)


async def create(client: Client, body: dict) -> dict:
    status, created, _ = await client.call("POST", "/api/integrations", json=body)
    assert status == 201, created
    return created


async def trigger(client: Client, external_id: str) -> dict:
    status, body, _ = await client.call("POST", f"/api/integrations/{external_id}/run")
    assert status == 202, body
    return body


async def test_run_reaches_success_with_exact_asset_counts_and_diffs_later_runs(client, stack):
    source = await create_shop_database(stack.dsn, "source_diff_e2e")
    await create(client, postgres_integration(source, "diff-e2e"))
    accepted = await trigger(client, "diff-e2e")
    assert set(accepted) >= {"integrationExternalId", "scheduledAt", "deferred", "message"}
    assert accepted["integrationExternalId"] == "diff-e2e" and accepted["deferred"] is False

    first = await client.wait_for_run("diff-e2e", {"SUCCESS", "FAILED", "CANCELLED"})
    assert first["status"] == "SUCCESS", first
    assert (first["assetsProcessed"], first["assetsCreated"], first["assetsUpdated"], first["assetsDeleted"]) == (
        SHOP_COUNTED, SHOP_COUNTED, 0, 0)  # fmt: skip
    assert first["startedAt"] <= first["completedAt"]
    status, by_id, _ = await client.call("GET", f"/api/integrations/diff-e2e/runs/{first['ingestionRunId']}")
    assert status == 200 and by_id == first

    await trigger(client, "diff-e2e")
    second = await client.wait_for_run("diff-e2e", {"SUCCESS", "FAILED"})
    assert second["ingestionRunId"] != first["ingestionRunId"]
    assert (second["assetsProcessed"], second["assetsCreated"], second["assetsUpdated"],
            second["assetsDeleted"]) == (SHOP_COUNTED, 0, 0, 0)  # fmt: skip

    conn = await asyncpg.connect(source)
    await conn.execute("""
        ALTER TABLE sales.customers ADD COLUMN phone text;
        DROP VIEW sales.big_orders;
        COMMENT ON TABLE hr.employees IS 'Staff';
    """)  # fmt: skip
    await conn.close()
    await trigger(client, "diff-e2e")
    third = await client.wait_for_run("diff-e2e", {"SUCCESS", "FAILED"})
    # +1 column, -1 view with its 3 columns, 1 table comment changed.
    assert (third["assetsProcessed"], third["assetsCreated"], third["assetsUpdated"], third["assetsDeleted"]) == (
        SHOP_COUNTED + 1 - 4, 1, 1, 4)  # fmt: skip


async def test_runs_are_listed_filtered_and_limited(client, stack):
    source = await create_shop_database(stack.dsn, "source_list_e2e")
    await create(client, postgres_integration(source, "list-e2e"))
    ids = []
    for _ in range(3):
        ids.append((await trigger(client, "list-e2e"))["ingestionRunId"])
        await client.wait_for_run("list-e2e", {"SUCCESS"})
    status, runs, _ = await client.call("GET", "/api/integrations/list-e2e/runs")
    assert status == 200 and [r["ingestionRunId"] for r in runs] == list(reversed(ids))
    status, runs, _ = await client.call("GET", "/api/integrations/list-e2e/runs?limit=2&status=SUCCESS")
    assert [r["ingestionRunId"] for r in runs] == list(reversed(ids))[:2]
    status, runs, _ = await client.call("GET", "/api/integrations/list-e2e/runs?status=FAILED")
    assert status == 200 and runs == []
    status, page0, headers = await client.call("GET", "/api/integrations/list-e2e/runs?limit=2")
    assert [r["ingestionRunId"] for r in page0] == list(reversed(ids))[:2]
    assert 'rel="next"' in headers["Link"] and "p=1" in headers["Link"] and "limit=2" in headers["Link"]
    status, page1, headers = await client.call("GET", "/api/integrations/list-e2e/runs?limit=2&p=1")
    assert [r["ingestionRunId"] for r in page1] == [ids[0]] and "Link" not in headers
    # Following the Link as given pages by keyset position (a deep page costs what the first does).
    _, _, headers = await client.call("GET", "/api/integrations/list-e2e/runs?limit=2")
    next_url = urlsplit(headers["Link"].split(";")[0].strip("<>"))
    assert "after=" in next_url.query
    status, followed, _ = await client.call("GET", f"{next_url.path}?{next_url.query}")
    assert status == 200 and [r["ingestionRunId"] for r in followed] == [ids[0]]
    status, bad, _ = await client.call("GET", "/api/integrations/list-e2e/runs?after=not-a-position")
    assert status == 400 and bad["errors"][0]["field"] == "after"


async def test_fifty_concurrent_triggers_give_exactly_one_202(client, stack, locked_view, shop_dsn):
    await create(client, postgres_integration(shop_dsn, "race-e2e"))
    results = await asyncio.gather(*(client.call("POST", "/api/integrations/race-e2e/run") for _ in range(50)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(202) == 1 and statuses.count(409) == 49
    conflict = next(body for status, body, _ in results if status == 409)
    assert conflict["status"] == "already_running" and conflict["message"]
    status, runs, _ = await client.call("GET", "/api/integrations/race-e2e/runs")
    assert len(runs) == 1
    status, _, _ = await client.call("POST", "/api/integrations/race-e2e/cancel")
    assert status == 204
    await client.wait_for_run("race-e2e", {"CANCELLED"})


async def test_cancelling_a_slow_run_ends_it_cancelled(client, stack, locked_view, shop_dsn, db):
    await create(client, postgres_integration(shop_dsn, "cancel-e2e"))
    await wait_started(db, (await trigger(client, "cancel-e2e"))["ingestionRunId"])
    await asyncio.sleep(0.5)  # let the crawl reach the locked view
    began = time.monotonic()
    status, _, _ = await client.call("POST", "/api/integrations/cancel-e2e/cancel")
    assert status == 204
    run = await client.wait_for_run("cancel-e2e", {"CANCELLED", "FAILED", "SUCCESS"}, timeout=15)
    elapsed = time.monotonic() - began
    assert run["status"] == "CANCELLED" and run["completedAt"], run
    print(f"\ncancellation observed after {elapsed:.2f}s")
    # Cancelling again, with nothing running, is still a 204.
    status, _, _ = await client.call("POST", "/api/integrations/cancel-e2e/cancel")
    assert status == 204


@pytest.mark.parametrize(
    ("sig", "expected", "within_s"),
    [
        # kill -9: nothing is reported any more; the reaper ends the run once heartbeats stop.
        (signal.SIGKILL, "heartbeat", 30),
        # SIGTERM: the connector ends its own runs on the way out.
        (signal.SIGTERM, "connector stopped during the run", 10),
    ],
    ids=["kill-9", "sigterm"],
)
async def test_a_connector_that_dies_mid_run_leaves_no_run_stuck(
    client, stack: Stack, locked_view, shop_dsn, db, sig, expected, within_s
):
    external_id = f"dies-{sig.name.lower()}-e2e"
    await create(client, postgres_integration(shop_dsn, external_id))
    await wait_started(db, (await trigger(client, external_id))["ingestionRunId"])
    stack.stop("connector", sig)
    try:
        run = await client.wait_for_run(external_id, {"FAILED", "SUCCESS", "CANCELLED"}, timeout=within_s)
        assert run["status"] == "FAILED" and expected in run["message"], run
    finally:
        stack.start("connector")


async def test_a_duplicate_event_delivered_twice_changes_nothing(client, stack, db, shop_dsn, kafka_bootstrap):
    await create(client, postgres_integration(shop_dsn, "dup-e2e"))
    run_id = uuid.UUID((await trigger(client, "dup-e2e"))["ingestionRunId"])
    await client.wait_for_run("dup-e2e", {"SUCCESS"})
    before_events = await db.fetch("SELECT * FROM run_events WHERE run_id = $1 ORDER BY seq", run_id)
    before_run = await db.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
    row = next(e for e in before_events if e["type"] in ("run.progressed.v1", "run.assets_changed.v1"))
    owner = RunOwner(connector_id=before_run["connector_id"], attempt=before_run["attempt"])
    duplicate = run_log_event({
        "event_id": row["event_id"], "type": row["type"], "occurred_at": row["occurred_at"], "owner": owner,
        "integration_id": row["integration_id"], "integration_external_id": "dup-e2e", "run_id": run_id,
        "payload": json.loads(row["payload"]),
    })  # fmt: skip
    late = duplicate.model_copy(update={"event_id": uuid.uuid4()})  # a different, late event: recorded as ignored
    producer = make_producer(kafka_bootstrap, client_id="e2e-duplicates")
    await producer.start()
    try:
        for event in (duplicate, duplicate, late):
            await producer.send_and_wait(
                topics.CONNECTOR_REPORTS, event.to_bytes(), key=str(event.integration_id).encode()
            )
    finally:
        await producer.stop()

    async def late_recorded() -> bool:
        return bool(await db.fetchval("SELECT 1 FROM run_events_ignored WHERE event_id = $1", late.event_id))

    await eventually(late_recorded)  # same partition, after the duplicates: they were processed
    assert await db.fetch("SELECT * FROM run_events WHERE run_id = $1 ORDER BY seq", run_id) == before_events
    assert await db.fetchrow("SELECT * FROM runs WHERE id = $1", run_id) == before_run
    assert not await db.fetchval("SELECT 1 FROM run_events_ignored WHERE event_id = $1", duplicate.event_id)


async def test_rebuilding_read_models_equals_the_live_ones(client, stack, db):
    await client.wait_for_run("diff-e2e", {"SUCCESS"})

    async def quiet() -> bool:
        return not await db.fetchval("SELECT count(*) FROM runs WHERE status IN ('QUEUED', 'RUNNING')")

    await eventually(quiet, timeout=30)
    runs = await db.fetch("SELECT * FROM runs ORDER BY id")
    assets = await db.fetch("SELECT * FROM assets ORDER BY integration_id, asset_key")
    assert runs and assets
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.manage", "rebuild", env=stack.env, cwd=ROOT
    )
    assert await process.wait() == 0
    assert await db.fetch("SELECT * FROM runs ORDER BY id") == runs
    assert await db.fetch("SELECT * FROM assets ORDER BY integration_id, asset_key") == assets


async def test_credentials_never_reach_logs_events_or_responses(client, stack: Stack, shop_dsn, db):
    role, password = f"reader_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    source = await asyncpg.connect(shop_dsn)
    await source.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    await source.close()
    body = postgres_integration(shop_dsn, "creds-e2e")
    body["configuration"]["username"] = role
    body["credentials"] = {"password": password}
    status, created, _ = await client.call("POST", "/api/integrations", json=body)
    assert status == 201 and password not in json.dumps(created)
    await trigger(client, "creds-e2e")
    assert (await client.wait_for_run("creds-e2e", {"SUCCESS", "FAILED"}))["status"] == "SUCCESS"
    # A wrong password fails the run with a message that names the problem, not the secret.
    wrong = f"wrong-{uuid.uuid4().hex}"
    assert (await client.call("PATCH", "/api/integrations/creds-e2e", json={"credentials": {"password": wrong}}))[
        0
    ] == 200
    await trigger(client, "creds-e2e")
    failed = await client.wait_for_run("creds-e2e", {"FAILED", "SUCCESS"})
    assert failed["status"] == "FAILED" and "Cannot connect" in failed["message"] and wrong not in failed["message"]
    logged = "".join(stack.log(name) for name in SERVICES)
    assert password not in logged and wrong not in logged
    events = await db.fetch(
        "SELECT payload::text AS p FROM run_events e JOIN integrations i ON i.id = e.integration_id "
        "WHERE i.external_id = 'creds-e2e'"
    )
    assert events and not any(password in e["p"] or wrong in e["p"] for e in events)


async def test_a_crawl_that_suddenly_misses_most_assets_withholds_the_deletions(client, stack, db):
    source = await create_shop_database(stack.dsn, "source_failsafe_e2e")
    await create(client, postgres_integration(source, "failsafe-e2e"))
    await trigger(client, "failsafe-e2e")
    assert (await client.wait_for_run("failsafe-e2e", {"SUCCESS", "FAILED"}))["assetsCreated"] == SHOP_COUNTED

    async def live_assets() -> int:
        return await db.fetchval(
            "SELECT count(*) FROM assets a JOIN integrations i ON i.id = a.integration_id "
            "WHERE i.external_id = 'failsafe-e2e' AND a.deleted_at IS NULL"
        )

    # The catalog did not vanish: a schema filter now matches nothing.
    changed = {"configuration": {"includeSchemas": ["no_such_schema"]}}
    assert (await client.call("PATCH", "/api/integrations/failsafe-e2e", json=changed))[0] == 200
    await trigger(client, "failsafe-e2e")
    run = await client.wait_for_run("failsafe-e2e", {"SUCCESS", "FAILED"})
    assert run["status"] == "SUCCESS" and run["assetsDeleted"] == 0, run
    # Every counted asset: the database, the level above schemas, is still there and is not counted.
    assert f"{SHOP_COUNTED} of {SHOP_COUNTED} assets (100.0%)" in run["message"]
    assert "failSafeThreshold of 20%" in run["message"] and '{"failSafeThreshold": 100}' in run["message"]
    assert await live_assets() == SHOP_ASSETS

    # The owner confirms the deletions are real by raising the threshold.
    status, updated, _ = await client.call("PATCH", "/api/integrations/failsafe-e2e", json={"failSafeThreshold": 100})
    assert status == 200 and updated["failSafeThreshold"] == 100
    await trigger(client, "failsafe-e2e")
    run = await client.wait_for_run("failsafe-e2e", {"SUCCESS", "FAILED"})
    assert run["status"] == "SUCCESS" and run["assetsDeleted"] == SHOP_COUNTED, run
    assert await live_assets() == 1
