"""The Immuta v2 Connections API (`/api/connections`), black box, as a demanding Immuta client uses it.

Written from /work/shared/specs/immuta.md (A1-A34, seed 004) and the design note. One connection is shared by the
tests that only read it (or only sync it); tests that change a connection's state or objects register their own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_KEY, Stack, free_port, postgres_integration
from tests.e2e.immuta_support import (
    AUTH_FORMS,
    HR,
    REDACTED,
    RESERVED,
    SALES,
    SEED_UUID,
    ImmutaClient,
    Source,
    assert_connection,
    assert_problem,
    assert_run,
    assert_task,
    assert_v2_object,
    create_source,
    get_pages,
    locked,
    parse_time,
    principals,
    unique_key,
)
from tests.support import eventually

pytestmark = pytest.mark.e2e

SOURCE_DB = "immuta_v2_src"
HANGING_DB = "immuta_v2_hang"


@dataclass(frozen=True)
class Shared:
    key: str
    created: dict[str, Any]  # the 201 body
    registration_task_id: str


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[ImmutaClient]:
    async with aiohttp.ClientSession() as session:
        yield ImmutaClient(session, stack.url, ADMIN_KEY)


@pytest.fixture(scope="module")
async def source(stack: Stack) -> Source:
    return await create_source(stack.dsn, SOURCE_DB)


@pytest.fixture(scope="module")
async def hanging_db(stack: Stack) -> Source:
    return await create_source(stack.dsn, HANGING_DB)


@pytest.fixture
async def hanging(hanging_db: Source) -> AsyncIterator[Source]:
    """A source whose crawl hangs on a lock for as long as the test runs."""
    async with locked(hanging_db):
        yield hanging_db


@pytest.fixture(scope="module")
async def shared(api: ImmutaClient, source: Source) -> Shared:
    """One registered connection whose first sync succeeded; its tests do not change its settings or objects."""
    key = unique_key("v2shared")
    created = await api.register(key, source.connection())
    task = await api.wait_task(key, (await api.registration_task(key))["taskId"])
    assert task["status"] == "SUCCEEDED", task
    return Shared(key, created, task["taskId"])


def expected_objects(key: str, database: str) -> set[tuple[str, str, str, str]]:
    """(name, type, normalizedType, remoteId) of every data object of a connection to the source (A8)."""
    objects = {(key, "connection", "CONNECTION", key), (database, "database", "DATABASE", database)}
    for schema, members in (("sales", SALES), ("hr", HR)):
        objects.add((schema, "schema", "SCHEMA", f"{database}.{schema}"))
        objects |= {(name, kind, "TABLE", f"{database}.{schema}.{name}") for name, kind in members}
    return objects


# ---------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------


async def test_registration_answers_201_redacted_and_its_sync_is_the_entropy_run(
    api: ImmutaClient, shared: Shared, source: Source
) -> None:
    assert_connection(shared.created, shared.key, source)
    assert shared.created["state"] == "ACTIVE" and shared.created["connection"]["password"] == REDACTED

    reply = await api.call("GET", f"/api/connections/{shared.key}")
    assert reply.status == 200, reply
    assert_connection(reply.body, shared.key, source)
    assert reply.body["state"] == "ACTIVE" and reply.body["createdAt"] == shared.created["createdAt"]

    # Registration started the first DATA_OBJECT_SYNC, triggered by the system (A21, A28).
    task = await api.task(shared.key, shared.registration_task_id)
    assert_task(task, "DATA_OBJECT_SYNC", "SYSTEM")
    assert task["status"] == "SUCCEEDED"
    assert task in await api.tasks(shared.key)

    run = await api.only_run(shared.key, task["taskId"])
    assert_run(run)
    assert run["status"] == "SUCCEEDED" and parse_time(run["startedAt"]) <= parse_time(run["completedAt"]), run
    assert "canceledBy" not in run or run["canceledBy"] is None, run
    assert await api.run(shared.key, task["taskId"], run["runId"]) == run
    runs = f"/api/connections/{shared.key}/tasks/{task['taskId']}/runs"
    assert (await api.call("GET", runs, params={"filter[status]": "SUCCEEDED"})).body["runs"] == [run]
    assert (await api.call("GET", runs, params={"filter[status]": "FAILED"})).body["runs"] == []

    # The same run through the Entropy dialect: the task run is the ingestion run.
    entropy = await api.call("GET", f"/api/integrations/{shared.key}/runs/{run['runId']}", auth="x-api-key")
    assert entropy.status == 200, entropy
    assert entropy.body["ingestionRunId"] == run["runId"] and entropy.body["status"] == "SUCCESS", entropy
    assert entropy.body["integrationExternalId"] == shared.key


async def test_a_source_that_is_down_can_still_be_registered_and_its_failed_sync_makes_it_unhealthy(
    api: ImmutaClient, source: Source
) -> None:
    key = unique_key("v2down")
    created = await api.register(key, source.connection(port=free_port()))
    assert created["state"] == "ACTIVE", created  # writes never contact the source (A32)
    task = await api.wait_task(key, (await api.registration_task(key))["taskId"])
    assert task["status"] == "FAILED", task
    run = await api.only_run(key, task["taskId"])
    assert_run(run)
    assert run["status"] == "FAILED", run

    async def unhealthy() -> bool:
        return bool((await api.call("GET", f"/api/connections/{key}")).body["state"] == "UNHEALTHY")

    await eventually(unhealthy, timeout=10)


BAD_KEYS = [
    "",
    "has space",
    "dot.ted",
    "slash/ed",
    "colon:ed",
    "umläut",
    "emoji-🙂",
    "tab\tbed",
    "a" * 129,
    *RESERVED,
    "DATA",
    "Connection",
    "oBjEcT",
    "CRAWL",
    "Search",
    "SETTINGS",
    "Metadata",
    "PERMISSION",
    "Sync",
    "BULK",
    "Upgrade",
]


@pytest.mark.parametrize("bad_key", BAD_KEYS, ids=lambda k: repr(k)[:24])
async def test_a_key_outside_the_rules_is_400_naming_the_key(api: ImmutaClient, source: Source, bad_key: str) -> None:
    reply = await api.call(
        "POST", "/api/connections", json={"connectionKey": bad_key, "connection": source.connection()}
    )
    assert_problem(reply, 400, "connectionKey")


async def test_keys_of_128_characters_and_keys_that_merely_contain_a_reserved_word_are_accepted(
    api: ImmutaClient, source: Source
) -> None:
    longest = ("Key_9-" + uuid.uuid4().hex) * 4
    longest = longest[:128]
    for key in (longest, f"data-{uuid.uuid4().hex[:8]}", f"SYNC_{uuid.uuid4().hex[:8]}"):
        created = await api.register(key, source.connection(port=free_port()))
        assert created["connectionKey"] == key
        assert (await api.call("GET", f"/api/connections/{key}")).status == 200


async def test_invalid_create_bodies_are_400_naming_the_field_never_409(
    api: ImmutaClient, source: Source, shared: Shared
) -> None:
    key = unique_key("v2invalid")
    connection = source.connection()
    without = {name: {k: v for k, v in connection.items() if k != name} for name in connection}
    cases: list[tuple[Any, str]] = [
        ({"connection": connection}, "connectionKey"),
        ({"connectionKey": key}, "connection"),
        ({"connectionKey": key, "connection": "postgres://x"}, "connection"),
        ({"connectionKey": key, "connection": connection | {"technology": "Databricks"}}, "technology"),  # no spec
        ({"connectionKey": key, "connection": connection | {"port": "5432x"}}, "port"),
        ({"connectionKey": key, "connection": connection | {"username": 42}}, "username"),
        ({"connectionKey": key, "connection": without["hostname"]}, "hostname"),
        ({"connectionKey": key, "connection": without["port"]}, "port"),
        ({"connectionKey": key, "connection": without["database"]}, "database"),
        ({"connectionKey": key, "connection": without["username"]}, "username"),
        ({"connectionKey": key, "connection": without["password"]}, "password"),
        ({"connectionKey": key, "connection": without["technology"]}, "technology"),
        # A duplicate key with an invalid body: the request is bad before it is a conflict.
        ({"connectionKey": shared.key, "connection": without["hostname"]}, "hostname"),
    ]
    for body, field in cases:
        assert_problem(await api.call("POST", "/api/connections", json=body), 400, field)
    assert_problem(await api.call("POST", "/api/connections", data="{not json"), 400)
    assert_problem(await api.call("POST", "/api/connections", json=[key]), 400)
    assert_problem(await api.call("GET", f"/api/connections/{key}"), 404)


async def test_a_duplicate_key_is_409_also_against_an_integration_made_through_entropy(
    api: ImmutaClient, source: Source, shared: Shared
) -> None:
    reply = await api.call("POST", "/api/connections", json={"connectionKey": shared.key,
                                                             "connection": source.connection()})  # fmt: skip
    assert_problem(reply, 409)

    external_id = unique_key("v2entropy")
    made = await api.call("POST", "/api/integrations", json=postgres_integration(source.admin_dsn, external_id),
                          auth="x-api-key")  # fmt: skip
    assert made.status == 201, made
    reply = await api.call("POST", "/api/connections", json={"connectionKey": external_id,
                                                             "connection": source.connection()})  # fmt: skip
    assert_problem(reply, 409)


# ---------------------------------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------------------------------


async def test_connections_are_listed_by_key_in_stable_cursor_pages(api: ImmutaClient, source: Source) -> None:
    prefix = f"v2page{uuid.uuid4().hex[:8]}"
    mine = [f"{prefix}-{letter}" for letter in "abcde"]  # sorted the same under any collation
    port = free_port()
    for key in mine:
        await api.register(key, source.connection(port=port))

    pages = await get_pages(api, "/api/connections", "connections", 2)
    assert all(len(page) == 2 for page in pages[:-1]), pages
    listed = [c["connectionKey"] for page in pages for c in page]
    assert len(listed) == len(set(listed)), "a connection was listed twice"
    assert [k for k in listed if k in mine] == mine, listed
    for page in pages:
        for connection in page:
            if connection["connectionKey"] in mine:  # (other tests' connections may be of platforms without one)
                assert connection["connection"]["password"] == REDACTED, connection
            assert connection["state"] in {"ACTIVE", "INACTIVE", "UNHEALTHY"}, connection
    # No gaps: the small pages hold exactly what the big ones hold, in the same order.
    big = await get_pages(api, "/api/connections", "connections", 100)
    assert [c["connectionKey"] for page in big for c in page] == listed

    # A cursor is stable: the same cursor gives the same page.
    first = await api.call("GET", "/api/connections", params={"page[limit]": 2})
    cursor = first.body["page"]["nextCursor"]
    assert cursor, first
    again = [await api.call("GET", "/api/connections", params={"page[limit]": 2, "page[cursor]": cursor})
             for _ in range(2)]  # fmt: skip
    # (Compared by key: a state may change meanwhile, as the dead-port syncs fail.)
    assert again[0].status == 200 and keys_of(again[0].body) == keys_of(again[1].body) == [
        c["connectionKey"] for c in pages[1]]  # fmt: skip

    # The default page holds 20.
    default = await api.call("GET", "/api/connections")
    assert default.status == 200 and len(default.body["connections"]) == min(20, len(listed)), default
    assert bool(default.body["page"].get("nextCursor")) == (len(listed) > 20)

    for limit in ("0", "101", "-1", "ten", "1.5", ""):
        assert_problem(await api.call("GET", "/api/connections", params={"page[limit]": limit}), 400, "limit")
    for bad in ("not a cursor!", "%%%", "bm90IGpzb24"):
        assert_problem(await api.call("GET", "/api/connections", params={"page[cursor]": bad}), 400, "cursor")


def keys_of(listing: dict[str, Any]) -> list[str]:
    return [c["connectionKey"] for c in listing["connections"]]


# ---------------------------------------------------------------------------------------------------------------
# PATCH, validate, state
# ---------------------------------------------------------------------------------------------------------------


async def test_a_dry_run_patch_answers_the_would_be_resource_and_persists_nothing(
    api: ImmutaClient, source: Source
) -> None:
    key = unique_key("v2dry")
    await api.registered(key, source)
    await api.wait_idle(key)
    before = (await api.call("GET", f"/api/connections/{key}")).body
    tasks_before = await api.tasks(key)
    port = free_port()

    reply = await api.call("PATCH", f"/api/connections/{key}", params={"dryRun": "true"},
                           json={"connection": {"port": port, "password": source.password}})  # fmt: skip
    assert reply.status == 200, reply
    assert_connection(reply.body, key, source, port=port)

    after = (await api.call("GET", f"/api/connections/{key}")).body
    assert after == before, "a dry run changed the connection"
    assert await api.tasks(key) == tasks_before, "a dry run started a task"

    # A dry run validates like the real thing: 400 for a bad body, 422 for a new target without the password.
    reply = await api.call("PATCH", f"/api/connections/{key}", params={"dryRun": "true"},
                           json={"connection": {"port": "five"}})  # fmt: skip
    assert_problem(reply, 400, "port")
    reply = await api.call("PATCH", f"/api/connections/{key}", params={"dryRun": "true"},
                           json={"connection": {"hostname": "elsewhere.example"}})  # fmt: skip
    assert_problem(reply, 422, "password")
    assert_problem(await api.call("PATCH", f"/api/connections/{key}", params={"dryRun": "maybe"},
                                  json={"connection": {}}), 400, "dryRun")  # fmt: skip
    assert (await api.call("GET", f"/api/connections/{key}")).body == before


async def test_a_patch_merges_and_redacted_means_unchanged(api: ImmutaClient, source: Source) -> None:
    key = unique_key("v2patch")
    created = await api.registered(key, source)
    await api.wait_idle(key)

    # A wrong password is stored (writes never contact the source); _validate then fails.
    reply = await api.call("PATCH", f"/api/connections/{key}", params={"dryRun": "false"},
                           json={"connection": {"password": "definitely-wrong"}})  # fmt: skip
    assert reply.status == 200, reply
    assert_connection(reply.body, key, source)
    assert "definitely-wrong" not in str(reply.body)
    assert (await validate(api, key))["status"] == "FAILED"

    reply = await api.call("PATCH", f"/api/connections/{key}", json={"connection": {"password": source.password}})
    assert reply.status == 200, reply
    assert (await validate(api, key))["status"] == "PASSED"

    # Sending back what GET returned, "[REDACTED]" included, changes nothing: the stored password stays.
    got = (await api.call("GET", f"/api/connections/{key}")).body
    reply = await api.call("PATCH", f"/api/connections/{key}", json={"connection": got["connection"]})
    assert reply.status == 200, reply
    assert_connection(reply.body, key, source)
    assert (await validate(api, key))["status"] == "PASSED"

    # A real change of the target, with the password, is persisted and shown.
    port = free_port()
    reply = await api.call("PATCH", f"/api/connections/{key}",
                           json={"connection": {"port": port, "password": source.password}})  # fmt: skip
    assert reply.status == 200, reply
    assert_connection(reply.body, key, source, port=port)
    got = (await api.call("GET", f"/api/connections/{key}")).body
    assert_connection(got, key, source, port=port)
    assert got["createdAt"] == created["createdAt"]
    assert parse_time(got["updatedAt"]) >= parse_time(created["updatedAt"])

    assert_problem(await api.call("PATCH", f"/api/connections/{unique_key('v2nobody')}",
                                  json={"connection": {"port": "not even valid"}}), 404)  # fmt: skip


async def test_changing_where_the_password_goes_needs_the_password_422(api: ImmutaClient, source: Source) -> None:
    key = unique_key("v2ident")
    await api.registered(key, source)
    await api.wait_idle(key)
    before = (await api.call("GET", f"/api/connections/{key}")).body
    changes: list[dict[str, Any]] = [{"hostname": "elsewhere.example"}, {"port": source.port + 1},
                                     {"database": "postgres"}, {"username": "someone_else"}]  # fmt: skip
    for change in changes:
        for password in ({}, {"password": REDACTED}):
            for dry_run in ("true", "false"):
                reply = await api.call("PATCH", f"/api/connections/{key}", params={"dryRun": dry_run},
                                       json={"connection": change | password})  # fmt: skip
                assert_problem(reply, 422, "password")
    assert (await api.call("GET", f"/api/connections/{key}")).body == before
    # With the password the same change goes through.
    reply = await api.call("PATCH", f"/api/connections/{key}",
                           json={"connection": {"hostname": "localhost", "password": source.password}})  # fmt: skip
    assert reply.status == 200 and reply.body["connection"]["hostname"] == "localhost", reply


async def validate(api: ImmutaClient, key: str) -> dict[str, Any]:
    """POST _validate (after any running task ended); returns the client component's validation."""
    await api.wait_idle(key)
    reply = await api.call("POST", f"/api/connections/{key}/_validate")
    assert reply.status == 200, reply
    assert reply.body["connectionKey"] == key and reply.body["state"] in {"ACTIVE", "UNHEALTHY"}, reply
    components = {v["component"]: v for v in reply.body["validations"]}
    assert set(components) <= {"client", "policy", "audit"}, reply
    for other in ("policy", "audit"):
        assert other not in components or components[other]["status"] == "SKIPPED", reply
    client = components["client"]
    assert client["status"] in {"PASSED", "FAILED"} and isinstance(client.get("message"), str), reply
    assert reply.body["state"] == ("ACTIVE" if client["status"] == "PASSED" else "UNHEALTHY"), reply
    assert (await api.call("GET", f"/api/connections/{key}")).body["state"] == reply.body["state"]
    return dict(client)


async def test_validate_fails_against_a_dead_port_then_passes_again(api: ImmutaClient, source: Source) -> None:
    key = unique_key("v2valid")
    await api.registered(key, source)
    assert (await validate(api, key))["status"] == "PASSED"

    port = free_port()
    reply = await api.call("PATCH", f"/api/connections/{key}",
                           json={"connection": {"port": port, "password": source.password}})  # fmt: skip
    assert reply.status == 200, reply
    failed = await validate(api, key)  # still a 200
    assert failed["status"] == "FAILED" and failed["message"], failed

    reply = await api.call("PATCH", f"/api/connections/{key}",
                           json={"connection": {"port": source.port, "password": source.password}})  # fmt: skip
    assert reply.status == 200, reply
    assert (await validate(api, key))["status"] == "PASSED"  # UNHEALTHY -> ACTIVE
    assert_problem(await api.call("POST", f"/api/connections/{unique_key('v2nobody')}/_validate"), 404)


async def test_deactivate_activate_and_delete_follow_the_state_rules(api: ImmutaClient, source: Source) -> None:
    key = unique_key("v2state")
    await api.registered(key, source)
    await api.wait_idle(key)
    base = f"/api/connections/{key}"

    assert_problem(await api.call("POST", f"{base}/_activate"), 409)  # already ACTIVE
    assert_problem(await api.call("DELETE", base), 409)  # only an INACTIVE connection is deleted
    assert (await api.call("GET", base)).status == 200

    reply = await api.call("POST", f"{base}/_deactivate")
    assert reply.status == 200 and reply.body["state"] == "INACTIVE", reply
    assert (await api.call("GET", base)).body["state"] == "INACTIVE"
    assert (await api.v1_object(key))["state"] == "inactive"
    assert_problem(await api.call("POST", f"{base}/_deactivate"), 409)
    # PATCH needs ACTIVE or UNHEALTHY; a bad body is still a 400 first.
    assert_problem(await api.call("PATCH", base, json={"connection": {"password": source.password}}), 409)
    assert_problem(await api.call("PATCH", base, json={"connection": {"port": "x"}}), 400, "port")

    reply = await api.call("POST", f"{base}/_activate")
    assert reply.status == 200 and reply.body["state"] == "ACTIVE", reply
    assert (await api.v1_object(key))["state"] == "active"

    assert (await api.call("POST", f"{base}/_deactivate")).status == 200
    await api.wait_idle(key)
    reply = await api.call("DELETE", base)
    assert reply.status == 202 and set(reply.body) >= {"taskId"} and SEED_UUID.match(reply.body["taskId"]), reply

    async def gone() -> bool:
        return (await api.call("GET", base)).status == 404

    await eventually(gone, timeout=10)
    assert_problem(await api.call("GET", base), 404)
    assert_problem(await api.call("GET", f"{base}/tasks"), 404)
    assert_problem(await api.call("GET", f"/data/connection/{key}"), 404)
    assert (await api.call("GET", f"/api/integrations/{key}", auth="x-api-key")).status == 404
    assert_problem(await api.call("DELETE", base), 404)
    for action in ("_activate", "_deactivate"):
        assert_problem(await api.call("POST", f"{base}/{action}"), 404)


# ---------------------------------------------------------------------------------------------------------------
# Tasks and runs
# ---------------------------------------------------------------------------------------------------------------


async def test_tasks_are_created_listed_filtered_and_read(api: ImmutaClient, shared: Shared) -> None:
    key = shared.key
    base = f"/api/connections/{key}/tasks"
    await api.wait_idle(key)
    reply = await api.call("POST", base, json={"type": "DATA_OBJECT_SYNC"})
    assert reply.status == 200, reply  # the seed: 200 "Task created"
    manual = reply.body
    assert_task(manual, "DATA_OBJECT_SYNC", "MANUAL")
    assert manual["createdBy"] != "system", manual
    assert manual["status"] in {"PENDING", "RUNNING", "SUCCEEDED"}, manual
    done = await api.wait_task(key, manual["taskId"])
    assert done["status"] == "SUCCEEDED", done
    assert {k: v for k, v in done.items() if k != "status"} == {k: v for k, v in manual.items() if k != "status"}

    everything = await api.tasks(key)
    assert everything[0]["taskId"] == manual["taskId"], "tasks are listed newest first"
    ids = [t["taskId"] for t in everything]
    assert shared.registration_task_id in ids and len(ids) == len(set(ids))
    one_by_one = await get_pages(api, base, "tasks", 1)
    assert [page[0]["taskId"] for page in one_by_one] == ids

    async def listed(**filters: str) -> set[str]:
        return {t["taskId"] for t in await api.tasks(key, **filters)}

    assert {manual["taskId"], shared.registration_task_id} <= await listed(type="DATA_OBJECT_SYNC")
    assert await listed(type="CONNECTION_DELETE") == set()
    manual_ones = await listed(trigger="MANUAL")
    assert manual["taskId"] in manual_ones and shared.registration_task_id not in manual_ones
    system_ones = await listed(trigger="SYSTEM")
    assert shared.registration_task_id in system_ones and manual["taskId"] not in system_ones
    assert {manual["taskId"], shared.registration_task_id} <= await listed(status="SUCCEEDED")
    assert manual["taskId"] not in await listed(status="FAILED")
    by_me = await listed(createdBy=manual["createdBy"])
    assert manual["taskId"] in by_me and shared.registration_task_id not in by_me
    assert shared.registration_task_id in await listed(createdBy="system")
    assert manual["taskId"] in await listed(type="DATA_OBJECT_SYNC", trigger="MANUAL", status="SUCCEEDED")

    for name, value in (("type", "SYNC"), ("status", "DONE"), ("trigger", "CRON"), ("parentId", "not-a-uuid")):
        assert_problem(await api.call("GET", base, params={f"filter[{name}]": value}), 400, name)
    assert_problem(await api.call("GET", base, params={"page[limit]": 0}), 400, "limit")

    assert await api.task(key, manual["taskId"]) == done
    run = await api.only_run(key, manual["taskId"])
    assert_run(run)
    assert run["status"] == "SUCCEEDED" and await api.run(key, manual["taskId"], run["runId"]) == run
    assert_problem(await api.call("GET", f"{base}/{manual['taskId']}/runs", params={"filter[status]": "OK"}), 400)

    # Ids must be UUIDs (400); unknown ones are 404.
    unknown = str(uuid.uuid4())
    assert_problem(await api.call("GET", f"{base}/not-a-uuid"), 400)
    assert_problem(await api.call("GET", f"{base}/{unknown}"), 404)
    assert_problem(await api.call("GET", f"{base}/not-a-uuid/runs"), 400)
    assert_problem(await api.call("GET", f"{base}/{unknown}/runs"), 404)
    assert_problem(await api.call("GET", f"{base}/{manual['taskId']}/runs/not-a-uuid"), 400)
    assert_problem(await api.call("GET", f"{base}/{manual['taskId']}/runs/{unknown}"), 404)
    assert_problem(await api.call("POST", f"{base}/{manual['taskId']}/runs/not-a-uuid/_cancel"), 400)
    assert_problem(await api.call("POST", f"{base}/{manual['taskId']}/runs/{unknown}/_cancel"), 404)

    # Cancelling a finished run: 409, and nothing changes (A27).
    reply = await api.call("POST", f"{base}/{manual['taskId']}/runs/{run['runId']}/_cancel")
    assert_problem(reply, 409)
    assert await api.run(key, manual["taskId"], run["runId"]) == run

    for body in ({"type": "DATA_OBJECT_DELETE"}, {"type": "CONNECTION_DELETE"}, {"type": "sync"}, {}, {"type": 5}):
        assert_problem(await api.call("POST", base, json=body), 400, "type")
    assert_problem(await api.call("POST", f"/api/connections/{unique_key('v2nobody')}/tasks",
                                  json={"type": "DATA_OBJECT_SYNC"}), 404)  # fmt: skip
    assert_problem(await api.call("GET", f"/api/connections/{unique_key('v2nobody')}/tasks"), 404)


async def hung_registration(api: ImmutaClient, key: str, source: Source) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register on the locked source; (task, run) of the registration sync once its crawl waits on the lock."""
    await api.register(key, source.connection())
    task = await api.registration_task(key)

    async def blocked() -> bool:
        return await source.blocked_queries() > 0

    await eventually(blocked, timeout=15)
    run = await api.only_run(key, task["taskId"])
    assert run["status"] == "RUNNING" and (await api.task(key, task["taskId"]))["status"] == "RUNNING", run
    return task, run


async def cancel_and_wait(api: ImmutaClient, key: str, task_id: str, run_id: str) -> dict[str, Any]:
    reply = await api.call("POST", f"/api/connections/{key}/tasks/{task_id}/runs/{run_id}/_cancel")
    assert reply.status == 200, reply
    assert reply.body["runId"] == run_id and isinstance(reply.body["message"], str), reply
    began = time.monotonic()

    async def ended() -> dict[str, Any] | None:
        run = await api.run(key, task_id, run_id)
        return run if run["status"] in {"CANCELLED", "FAILED", "SUCCEEDED"} else None

    run = await eventually(ended, timeout=10)  # A33: within 10 s, also while the source never answers
    assert run["status"] == "CANCELLED", (run, time.monotonic() - began)
    return run


async def test_a_sync_hanging_on_its_source_is_cancelled_within_10s(api: ImmutaClient, hanging: Source) -> None:
    key = unique_key("v2cancel")
    task, run = await hung_registration(api, key, hanging)
    base = f"/api/connections/{key}/tasks"

    # One active sync per connection (A14); a bad request is still a 400, not a 409.
    assert_problem(await api.call("POST", base, json={"type": "DATA_OBJECT_SYNC"}), 409)
    assert_problem(await api.call("POST", base, json={"type": "NOPE"}), 400, "type")

    cancelled = await cancel_and_wait(api, key, task["taskId"], run["runId"])
    assert_run(cancelled)
    assert isinstance(cancelled.get("canceledBy"), str) and cancelled["canceledBy"], cancelled
    assert cancelled["canceledBy"] != "system", cancelled
    assert parse_time(cancelled["completedAt"]) >= parse_time(cancelled["createdAt"])
    assert (await api.task(key, task["taskId"]))["status"] == "CANCELLED"

    # Cancelling it again: 409, and the run stays as it was.
    reply = await api.call("POST", f"{base}/{task['taskId']}/runs/{run['runId']}/_cancel")
    assert_problem(reply, 409)
    assert await api.run(key, task["taskId"], run["runId"]) == cancelled


async def test_of_concurrent_sync_requests_exactly_one_wins(api: ImmutaClient, hanging: Source) -> None:
    key = unique_key("v2race")
    task, run = await hung_registration(api, key, hanging)
    await cancel_and_wait(api, key, task["taskId"], run["runId"])

    base = f"/api/connections/{key}/tasks"
    replies = await asyncio.gather(*(api.call("POST", base, json={"type": "DATA_OBJECT_SYNC"}) for _ in range(8)))
    winners = [r for r in replies if r.status == 200]
    assert len(winners) == 1 and sum(r.status == 409 for r in replies) == 7, replies
    for reply in replies:
        if reply.status == 409:
            assert_problem(reply, 409)
    winner = winners[0].body
    assert_task(winner, "DATA_OBJECT_SYNC", "MANUAL")
    assert [t["taskId"] for t in await api.tasks(key, trigger="MANUAL")] == [winner["taskId"]]

    async def blocked_again() -> dict[str, Any] | None:
        runs = (await api.call("GET", f"{base}/{winner['taskId']}/runs")).body["runs"]
        return runs[0] if runs and runs[0]["status"] == "RUNNING" and await hanging.blocked_queries() else None

    running = await eventually(blocked_again, timeout=15)
    cancelled = await cancel_and_wait(api, key, winner["taskId"], running["runId"])
    assert cancelled["canceledBy"] == winner["createdBy"], "the same key requested the sync and cancelled it"


# ---------------------------------------------------------------------------------------------------------------
# Data objects
# ---------------------------------------------------------------------------------------------------------------


async def test_search_finds_every_data_object_of_the_connection_in_pages(
    api: ImmutaClient, shared: Shared, source: Source
) -> None:
    key, database = shared.key, source.database
    await api.wait_idle(key)
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        page: dict[str, Any] = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        reply = await api.call("POST", "/api/connections/dataObjects/_search",
                               json={"connectionKey": key, "page": page})  # fmt: skip
        assert reply.status == 200, reply
        pages.append(reply.body["dataObjects"])
        cursor = reply.body["page"].get("nextCursor")
        if not cursor:
            break
        assert len(pages) < 10, "no last page"
    assert [len(p) for p in pages] == [5, 5, 2], pages
    found = [o for p in pages for o in p]
    for item in found:
        assert_v2_object(item, key)
        assert item["createdBy"] == "system" and item["updatedBy"] == "system", item
    assert len({o["id"] for o in found}) == len(found), "an object was listed twice"
    assert {(o["name"], o["type"], o["normalizedType"], o["remoteId"]) for o in found} == expected_objects(
        key, database
    )
    # Data objects are ordered by name (then id). The source's names, and the key (lower case, starting with a
    # "v"), sort alike under C and glibc collations: Python's order is the expected one.
    assert [o["name"] for o in found] == sorted(o["name"] for o in found)
    assert not {o["name"] for o in found} & {"public", "pg_catalog", "information_schema", "pg_toast"}

    async def names(**filters: Any) -> set[str]:
        return {o["name"] for o in await api.search(key, **filters)}

    assert await names(name="customers") == {"customers"}
    assert await names(name="in/out") == {"in/out"}
    assert await names(type="view") == {"big_orders", "managers"}
    assert await names(type="materialized_view") == {"revenue_by_month"}
    assert await names(normalizedType="SCHEMA") == {"hr", "sales"}
    assert await names(normalizedType="TABLE") == {name for name, _ in SALES + HR}
    assert await names(normalizedType="TABLE", type="table") == {n for n, kind in SALES + HR if kind == "table"}
    assert await names(remoteId=f"{database}.sales.order items") == {"order items"}
    assert await names(normalizedType="DATABASE") == {database}

    search = "/api/connections/dataObjects/_search"
    assert_problem(await api.call("POST", search, json={}), 400, "connectionKey")
    assert_problem(await api.call("POST", search, json={"connectionKey": 7}), 400, "connectionKey")
    assert_problem(await api.call("POST", search, json={"connectionKey": unique_key("v2nobody")}), 404)
    for page_spec in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"cursor": "not a cursor!"}):
        reply = await api.call("POST", search, json={"connectionKey": key, "page": page_spec})
        assert_problem(reply, 400, next(iter(page_spec)))


async def test_data_objects_are_read_by_id_and_their_children_paged(
    api: ImmutaClient, shared: Shared, source: Source
) -> None:
    key, database = shared.key, source.database
    await api.wait_idle(key)
    by_remote_id = {o["remoteId"]: o for o in await api.search(key)}
    root = by_remote_id[key]
    assert root["name"] == key and root["type"] == "connection" and root["normalizedType"] == "CONNECTION"
    base = f"/api/connections/{key}/dataObjects"

    for item in by_remote_id.values():
        reply = await api.call("GET", f"{base}/{item['id']}")
        assert reply.status == 200 and reply.body == item, (item, reply)

    async def children(remote_id: str, limit: int) -> list[list[dict[str, Any]]]:
        return await get_pages(api, f"{base}/{by_remote_id[remote_id]['id']}/children", "children", limit)

    assert [[c["name"] for c in page] for page in await children(key, 20)] == [[database]]
    assert [[c["name"] for c in page] for page in await children(database, 20)] == [["hr", "sales"]]
    sales_names = [name for name, _ in SALES]
    assert [[c["name"] for c in page] for page in await children(f"{database}.sales", 2)] == [
        sales_names[0:2], sales_names[2:4], sales_names[4:]]  # fmt: skip
    assert [[c["name"] for c in page] for page in await children(f"{database}.sales", 5)] == [sales_names]
    hr_children = (await children(f"{database}.hr", 20))[0]
    assert [(c["name"], c["type"]) for c in hr_children] == HR
    assert all(c == by_remote_id[c["remoteId"]] for c in hr_children)
    assert await children(f"{database}.hr.in/out", 20) == [[]]

    unknown = str(uuid.uuid4())
    assert_problem(await api.call("GET", f"{base}/not-a-uuid"), 400)
    assert_problem(await api.call("GET", f"{base}/{unknown}"), 404)
    assert_problem(await api.call("GET", f"{base}/not-a-uuid/children"), 400)
    assert_problem(await api.call("GET", f"{base}/{unknown}/children"), 404)
    sales_children = f"{base}/{by_remote_id[f'{database}.sales']['id']}/children"
    assert_problem(await api.call("GET", sales_children, params={"page[limit]": 0}), 400, "limit")
    assert_problem(await api.call("GET", sales_children, params={"page[cursor]": "not a cursor!"}), 400)
    assert_problem(await api.call("GET", f"/api/connections/{unique_key('v2nobody')}/dataObjects/{root['id']}"), 404)

    # An id of another connection's object is 404 here, even over the same source.
    other = unique_key("v2other")
    await api.registered(other, source)
    other_ids = {o["remoteId"]: o["id"] for o in await api.search(other)}
    assert set(other_ids.values()).isdisjoint(o["id"] for o in by_remote_id.values())
    for remote_id in (other, f"{database}.sales"):
        assert_problem(await api.call("GET", f"{base}/{other_ids[remote_id]}"), 404)


async def test_ids_stay_the_same_across_a_second_sync(api: ImmutaClient, shared: Shared) -> None:
    before = {o["remoteId"]: o for o in await api.search(shared.key)}
    await api.sync(shared.key)
    after = {o["remoteId"]: o for o in await api.search(shared.key)}
    assert {r: o["id"] for r, o in after.items()} == {r: o["id"] for r, o in before.items()}
    for remote_id, item in after.items():
        assert item["createdAt"] == before[remote_id]["createdAt"], item
        assert parse_time(item["lastSyncedAt"]) >= parse_time(before[remote_id]["lastSyncedAt"]), item


async def test_patching_a_data_object_deactivates_its_subtree_as_v1_shows(api: ImmutaClient, source: Source) -> None:
    key, database = unique_key("v2objpatch"), source.database
    await api.registered(key, source)
    await api.wait_idle(key)
    sales = await api.data_object(key, f"{database}.sales")
    path = f"/api/connections/{key}/dataObjects/{sales['id']}"

    reply = await api.call("PATCH", path, json={"isActive": False})
    assert reply.status == 200, reply
    assert_v2_object(reply.body, key)
    assert (reply.body["id"], reply.body["name"], reply.body["remoteId"]) == (sales["id"], "sales", sales["remoteId"])

    v1_sales = await api.v1_object(key, database, "sales")
    assert v1_sales["state"] == "inactive" and "isActive" in v1_sales["overrides"], v1_sales
    for name, _ in SALES:
        table = await api.v1_object(key, database, "sales", name)
        assert table["state"] == "inactive" and table["dataSourceId"] is None, table
        assert "isActive" not in table["overrides"], table
    employees = await api.v1_object(key, database, "hr", "employees")
    assert employees["state"] == "active" and isinstance(employees["dataSourceId"], int), employees
    root = await api.v1_object(key)
    assert root["settings"]["isActive"] == {"value": True, "hasDescendantsWithOverrides": True}, root

    # {} is a no-op answering the full object; owners set through v2 show in v1.
    reply = await api.call("PATCH", path, json={})
    assert reply.status == 200 and reply.body["id"] == sales["id"], reply
    assert (await api.v1_object(key, database, "sales"))["state"] == "inactive"
    reply = await api.call("PATCH", path, json={"dataOwners": [{"id": 5, "type": "user"}]})
    assert reply.status == 200, reply
    assert ("user", 5) in principals(await api.v1_object(key, database, "sales", "orders"), "dataOwners")

    assert_problem(await api.call("PATCH", path, json={"isActive": "no"}), 400, "isActive")
    assert_problem(await api.call("PATCH", path, json={"dataOwners": [{"id": 5, "type": "role"}]}), 400, "type")
    assert_problem(await api.call("PATCH", f"/api/connections/{key}/dataObjects/not-a-uuid", json={}), 400)
    assert_problem(await api.call("PATCH", f"/api/connections/{key}/dataObjects/{uuid.uuid4()}", json={}), 404)

    reply = await api.call("PATCH", path, json={"isActive": True})
    assert reply.status == 200, reply

    async def active_again() -> bool:
        customers = await api.v1_object(key, database, "sales", "customers")
        return customers["state"] == "active" and isinstance(customers["dataSourceId"], int)

    await eventually(active_again, timeout=30)


async def test_deleting_a_data_object_removes_its_subtree_until_a_later_sync(api: ImmutaClient, source: Source) -> None:
    key, database = unique_key("v2objdel"), source.database
    await api.registered(key, source)
    await api.wait_idle(key)
    before = {o["remoteId"]: o for o in await api.search(key)}
    hr = before[f"{database}.hr"]
    base = f"/api/connections/{key}/dataObjects"

    reply = await api.call("DELETE", f"{base}/{hr['id']}")
    assert reply.status == 202 and SEED_UUID.match(reply.body["taskId"]), reply
    task = await api.wait_task(key, reply.body["taskId"])
    assert_task(task, "DATA_OBJECT_DELETE")
    assert task["status"] == "SUCCEEDED", task

    for remote_id in (f"{database}.hr", *(f"{database}.hr.{name}" for name, _ in HR)):
        assert_problem(await api.call("GET", f"{base}/{before[remote_id]['id']}"), 404)
    database_id = before[database]["id"]
    assert [c["name"] for page in await get_pages(api, f"{base}/{database_id}/children", "children", 20)
            for c in page] == ["sales"]  # fmt: skip
    assert {o["name"] for o in await api.search(key, normalizedType="TABLE")} == {n for n, _ in SALES}
    await api.v1_missing(key, database, "hr")
    await api.v1_missing(key, database, "hr", "employees")
    assert_problem(await api.call("DELETE", f"{base}/{hr['id']}"), 404)
    assert_problem(await api.call("DELETE", f"{base}/not-a-uuid"), 400)
    assert_problem(await api.call("DELETE", f"{base}/{before[key]['id']}"), 409)  # delete the connection instead

    # Still at the source, so the next sync finds them again, with the same ids (A17).
    await api.sync(key)
    after = {o["remoteId"]: o for o in await api.search(key)}
    assert {r: o["id"] for r, o in after.items()} == {r: o["id"] for r, o in before.items()}


# ---------------------------------------------------------------------------------------------------------------
# Authentication and teams
# ---------------------------------------------------------------------------------------------------------------


async def test_bearer_bare_and_x_api_key_work_and_a_missing_or_wrong_key_is_401(
    api: ImmutaClient, shared: Shared
) -> None:
    path = f"/api/connections/{shared.key}"
    for auth in AUTH_FORMS:
        reply = await api.call("GET", path, auth=auth)
        assert reply.status == 200 and reply.body["connectionKey"] == shared.key, (auth, reply)
    search = {"connectionKey": shared.key}
    assert (await api.call("POST", "/api/connections/dataObjects/_search", json=search, auth="bare")).status == 200

    assert_problem(await api.call("GET", path, auth="none"), 401)
    for auth in AUTH_FORMS:
        reply = await api.call("GET", path, auth=auth, key="not-" + ADMIN_KEY)
        assert_problem(reply, 401)
    # Authentication comes first: an unknown connection without a key is 401, not 404.
    assert_problem(await api.call("GET", f"/api/connections/{unique_key('v2nobody')}", auth="none"), 401)
    assert_problem(await api.call("GET", "/api/connections", auth="none"), 401)
    assert_problem(await api.call("POST", "/api/connections", json={}, auth="none"), 401)
    assert_problem(await api.call("POST", "/api/connections/dataObjects/_search", json=search, auth="none"), 401)
    assert_problem(await api.call("GET", f"{path}/tasks", auth="none"), 401)


async def test_team_keys_see_only_their_teams_connections(api: ImmutaClient, source: Source) -> None:
    team_a, team_b = unique_key("v2team-a"), unique_key("v2team-b")
    editor_a = await api.team_key(team_a, ["INGESTION_VIEW", "INGESTION_EDIT"])
    viewer_a = await api.team_key(team_a, ["INGESTION_VIEW"])
    editor_b = await api.team_key(team_b, ["INGESTION_VIEW", "INGESTION_EDIT"])
    key = unique_key("v2teamconn")
    await api.register(key, source.connection(), api_key=editor_a)
    await api.wait_task(key, (await api.registration_task(key))["taskId"])
    base = f"/api/connections/{key}"

    calls: list[tuple[str, str, Any]] = [
        ("GET", base, None), ("PATCH", base, {"connection": {}}), ("DELETE", base, None),
        ("POST", f"{base}/_validate", None), ("POST", f"{base}/_deactivate", None), ("GET", f"{base}/tasks", None),
        ("POST", f"{base}/tasks", {"type": "DATA_OBJECT_SYNC"}),
    ]  # fmt: skip
    for method, path, body in calls:
        reply = await api.call(method, path, json=body, key=editor_b)
        assert_problem(reply, 404)
    search = {"connectionKey": key}
    assert_problem(await api.call("POST", "/api/connections/dataObjects/_search", json=search, key=editor_b), 404)
    assert key not in await listed_keys(api, editor_b)

    assert (await api.call("GET", base, key=viewer_a)).status == 200
    assert key in await listed_keys(api, viewer_a)
    assert_problem(await api.call("PATCH", base, json={"connection": {"password": source.password}}, key=viewer_a), 403)
    assert_problem(await api.call("POST", f"{base}/tasks", json={"type": "DATA_OBJECT_SYNC"}, key=viewer_a), 403)
    assert (await api.call("GET", base, key=editor_a)).status == 200
    assert (await api.call("GET", base)).status == 200  # the organization owner sees every connection


async def listed_keys(api: ImmutaClient, key: str) -> set[str]:
    keys: set[str] = set()
    cursor: str | None = None
    for _ in range(100):
        params: dict[str, Any] = {"page[limit]": 100} | ({"page[cursor]": cursor} if cursor else {})
        reply = await api.call("GET", "/api/connections", params=params, key=key)
        assert reply.status == 200, reply
        keys |= {c["connectionKey"] for c in reply.body["connections"]}
        cursor = reply.body["page"].get("nextCursor")
        if not cursor:
            return keys
    raise AssertionError("no last page")


async def test_an_integration_immuta_cannot_represent_is_no_connection(api: ImmutaClient) -> None:
    """A custom (upload-synced) integration has no Immuta technology: not listed, 404 in both Immuta dialects."""
    key = unique_key("v2custom")
    made = await api.call("POST", "/api/integrations", auth="x-api-key", json={
        "externalId": key, "name": "Uploads", "source": "custom", "configuration": {}})  # fmt: skip
    assert made.status == 201, made
    for path in (f"/api/connections/{key}", f"/data/connection/{key}", f"/data/object/{key}"):
        assert_problem(await api.call("GET", path), 404)
    listed: set[str] = set()
    params = {"page[limit]": "100"}
    while True:  # every page: the key must be on none of them
        page = await api.call("GET", "/api/connections", params=params)
        listed |= {c["connectionKey"] for c in page.body["connections"]}
        if not page.body["page"]["nextCursor"]:
            break
        params = {"page[limit]": "100", "page[cursor]": page.body["page"]["nextCursor"]}
    assert key not in listed
    roots = await api.call("POST", "/data/object/search", params={"searchText": key})
    assert roots.body == {"count": 0, "hits": []}
    triggered = await api.call("POST", f"/api/integrations/{key}/run", auth="x-api-key")
    assert triggered.status == 409 and "not crawled" in triggered.body["detail"], triggered


async def test_an_unknown_object_or_task_in_the_path_is_a_404_before_a_bad_query_is_a_400(
    api: ImmutaClient, shared: Shared
) -> None:
    """Auth, then the path's resource, then the request (spec §1): the object or task named comes before the query."""
    unknown = str(uuid.uuid4())
    for path in (f"/api/connections/{shared.key}/dataObjects/{unknown}/children",
                 f"/api/connections/{shared.key}/tasks/{unknown}/runs"):  # fmt: skip
        assert_problem(await api.call("GET", path, params={"page[limit]": "500"}), 404)
        assert_problem(await api.call("GET", path, params={"page[cursor]": "not a cursor!"}), 404)
