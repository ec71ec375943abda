"""The Immuta v1 `/data` API ("Manage a Connection"), black box, as a demanding Immuta client uses it.

Written from /work/shared/specs/immuta.md (A1-A34, seed 003) and the design note. Connections are registered
through v2 (v1 has no create); one is shared by the tests that only read, the others register their own, and
those that change the source get a source database of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_KEY, Stack, free_port
from tests.e2e.immuta_support import (
    AUTH_FORMS,
    DESCENDANTS_OF_ROOT,
    HR,
    REDACTED,
    SALES,
    ImmutaClient,
    Source,
    assert_problem,
    assert_task,
    assert_v1_object,
    create_source,
    is_timestamp,
    locked,
    object_path,
    parse_time,
    principals,
    setting,
    unique_key,
)
from tests.support import eventually

pytestmark = pytest.mark.e2e

SOURCE_DB = "immuta_v1_src"
HANGING_DB = "immuta_v1_hang"
U1, G2, U7, G8 = ({"id": 1, "type": "user"}, {"id": 2, "type": "group"}, {"id": 7, "type": "user"},
                  {"id": 8, "type": "group"})  # fmt: skip


@dataclass(frozen=True)
class Shared:
    key: str
    database: str


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[ImmutaClient]:
    async with aiohttp.ClientSession() as session:
        yield ImmutaClient(session, stack.url, ADMIN_KEY)


@pytest.fixture(scope="module")
async def source(stack: Stack) -> Source:
    return await create_source(stack.dsn, SOURCE_DB)


@pytest.fixture
async def own_source(stack: Stack) -> Source:
    """A source database for one test, which changes it."""
    return await create_source(stack.dsn, f"immuta_v1_{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="module")
async def hanging_db(stack: Stack) -> Source:
    return await create_source(stack.dsn, HANGING_DB)


@pytest.fixture
async def hanging(hanging_db: Source) -> AsyncIterator[Source]:
    async with locked(hanging_db):
        yield hanging_db


@pytest.fixture(scope="module")
async def shared(api: ImmutaClient, source: Source) -> Shared:
    """One registered connection, synced once; its tests neither change its settings nor its objects."""
    key = unique_key("v1shared")
    await api.registered(key, source)
    return Shared(key, source.database)


def names(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["objectPath"][-1] for hit in hits]


async def search(api: ImmutaClient, *segments: str, **params: Any) -> dict[str, Any]:
    path = "/data/object/search" + ("/" + object_path(*segments) if segments else "")
    reply = await api.call("POST", path, params=params)
    assert reply.status == 200, reply
    assert set(reply.body) == {"count", "hits"} and isinstance(reply.body["count"], int), reply
    assert reply.body["count"] >= len(reply.body["hits"]), reply
    return dict(reply.body)


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


async def test_get_connection_shows_it_without_the_password(api: ImmutaClient, shared: Shared, source: Source) -> None:
    reply = await api.call("GET", f"/data/connection/{shared.key}")
    assert reply.status == 200, reply
    body = reply.body
    assert set(body) >= {"connectionKey", "connection", "createdAt", "createdBy", "updatedAt", "updatedBy",
                         "creator", "updater", "nativeIntegrationId"}, body  # fmt: skip
    assert body["connectionKey"] == shared.key
    want = {k: v for k, v in source.connection().items() if k != "password"}
    assert {k: body["connection"].get(k) for k in want} == want, body
    assert "password" not in body["connection"] and source.password not in str(body) and REDACTED not in str(body)
    for field in ("createdBy", "updatedBy", "nativeIntegrationId"):
        assert type(body[field]) is int, (field, body)
    for person, id_field in (("creator", "createdBy"), ("updater", "updatedBy")):
        assert set(body[person]) >= {"id", "name", "email"} and body[person]["id"] == body[id_field], body
    assert is_timestamp(body["createdAt"]) and is_timestamp(body["updatedAt"]), body
    assert_problem(await api.call("GET", f"/data/connection/{unique_key('v1nobody')}"), 404)


async def test_objects_are_read_at_every_level_with_percent_encoded_names(
    api: ImmutaClient, shared: Shared, source: Source
) -> None:
    key, database = shared.key, shared.database
    root = await api.v1_object(key)
    assert_v1_object(root, key)
    assert root["state"] == "active" and root["overrides"] == [] and root["remoteId"] is None, root
    assert root["settings"] == {
        "isActive": {"value": True, "hasDescendantsWithOverrides": False},
        "activateNewChildren": {"value": True, "hasDescendantsWithOverrides": False},
        "dataOwners": {"value": [], "hasDescendantsWithOverrides": False},
        "infrastructureAdmins": {"value": [], "hasDescendantsWithOverrides": False},
    }, root
    assert is_timestamp(root["lastCrawled"]), root  # the sync listed its children

    for segments in ((key, database), (key, database, "sales"), (key, database, "hr")):
        found = await api.v1_object(*segments)
        assert_v1_object(found, *segments)
        assert found["state"] == "active" and found["overrides"] == [] and found["settings"] == root["settings"]
        assert is_timestamp(found["lastCrawled"]), found

    data_source_ids = set()
    for schema, members in (("sales", SALES), ("hr", HR)):
        for name, _ in members:
            found = await api.v1_object(key, database, schema, name)  # "order items" as %20, "in/out" as %2F
            assert_v1_object(found, key, database, schema, name)
            assert found["state"] == "active" and found["overrides"] == [], found
            data_source_ids.add(found["dataSourceId"])
    assert len(data_source_ids) == len(SALES) + len(HR), "every active table-level object has its own dataSourceId"

    reply = await api.call("GET", f"/data/object/{key}/{database}/hr/in%2Fout")
    assert reply.status == 200 and reply.body["objectPath"] == [key, database, "hr", "in/out"], reply
    reply = await api.call("GET", f"/data/object/{key}/{database}/sales/order%20items")
    assert reply.status == 200 and reply.body["objectPath"] == [key, database, "sales", "order items"], reply


async def test_paths_that_name_no_object_are_404(api: ImmutaClient, shared: Shared) -> None:
    key, database = shared.key, shared.database
    for raw in (
        f"{key}//sales",  # an empty segment
        f"{key}/{database}/",  # an empty last segment
        f"{key}/{database}/sales//customers",
        f"{key}/{database}/sales/customers/id",  # a column: deeper than the hierarchy
        f"{key}/{database}/sales/customers/id/more",
        f"{key}/{database}/hr/in/out",  # the '/' inside a name must be encoded
        f"{key}/{database}/SALES",  # names match exactly
        f"{key}/{database}/sales/order%2520items",  # decoded once: the name "order%20items" does not exist
        f"{key}/{database}/nope",
        f"{key}/nope",
        unique_key("v1nobody"),
    ):
        assert_problem(await api.call("GET", "/data/object/" + raw), 404)
    assert_problem(await api.call("POST", f"/data/object/search/{key}/{database}/nope"), 404)
    assert_problem(await api.call("POST", f"/data/object/search/{key}//sales"), 404)


async def test_search_without_a_path_lists_the_connections(api: ImmutaClient, shared: Shared) -> None:
    everything = await search(api)
    assert everything["count"] >= 1 and all(len(hit["objectPath"]) == 1 for hit in everything["hits"]), everything
    mine = await search(api, searchText=shared.key[2:].upper())  # partial, case-insensitive
    assert mine["count"] == 1 and [hit["objectPath"] for hit in mine["hits"]] == [[shared.key]], mine
    assert_v1_object(mine["hits"][0], shared.key)
    assert mine["hits"][0] == await api.v1_object(shared.key)
    one = await search(api, limit=1)
    assert one["count"] == everything["count"] and len(one["hits"]) == 1, one


async def test_search_lists_direct_children_sorted_paged_and_filtered(api: ImmutaClient, shared: Shared) -> None:
    key, database = shared.key, shared.database
    result = await search(api, key)
    assert result["count"] == 1 and [hit["objectPath"] for hit in result["hits"]] == [[key, database]], result

    result = await search(api, key, database)
    assert result["count"] == 2 and names(result["hits"]) == ["hr", "sales"], result
    assert names((await search(api, key, database, sortOrder="desc"))["hits"]) == ["sales", "hr"]
    assert names((await search(api, key, database, sortField="name", sortOrder="asc"))["hits"]) == ["hr", "sales"]

    sales = [name for name, _ in SALES]
    result = await search(api, key, database, "sales")
    assert result["count"] == 5 and names(result["hits"]) == sales, result
    for hit in result["hits"]:
        assert_v1_object(hit, *hit["objectPath"])
        assert hit == await api.v1_object(*hit["objectPath"])
    assert names((await search(api, key, database, "sales", sortOrder="desc"))["hits"]) == sales[::-1]

    pages = [await search(api, key, database, "sales", limit=2, offset=offset) for offset in (0, 2, 4, 5, 99)]
    assert [page["count"] for page in pages] == [5] * 5, pages
    assert [names(page["hits"]) for page in pages] == [sales[0:2], sales[2:4], sales[4:], [], []]

    by_creation = await search(api, key, database, "sales", sortField="createdAt")
    assert by_creation["count"] == 5 and sorted(names(by_creation["hits"])) == sorted(sales), by_creation
    created = [parse_time(hit["createdAt"]) for hit in by_creation["hits"]]
    assert created == sorted(created), by_creation

    found = await search(api, key, database, "sales", searchText="ORDER")
    assert found["count"] == 3 and names(found["hits"]) == ["big_orders", "order items", "orders"], found
    found = await search(api, key, database, "sales", searchText="order", limit=1, offset=1)
    assert found["count"] == 3 and names(found["hits"]) == ["order items"], found
    found = await search(api, key, database, "sales", searchText=" ")
    assert names(found["hits"]) == ["order items"], found
    found = await search(api, key, database, "hr", searchText="/")
    assert found["count"] == 1 and [hit["objectPath"] for hit in found["hits"]] == [[key, database, "hr", "in/out"]]
    assert await search(api, key, database, "sales", searchText="no-such-name") == {"count": 0, "hits": []}

    # At the table level there are no children (columns are not data objects).
    assert await search(api, key, database, "sales", "customers") == {"count": 0, "hits": []}
    assert await search(api, key, database, "hr", "in/out") == {"count": 0, "hits": []}
    assert (await search(api, key, database, "sales", limit=1000))["count"] == 5


async def test_search_refuses_bad_parameters(api: ImmutaClient, shared: Shared) -> None:
    path = f"/data/object/search/{object_path(shared.key, shared.database)}"
    for name, value in (("sortField", "bogus"), ("sortField", "remoteId"), ("sortOrder", "up"), ("offset", "-1"),
                        ("offset", "x"), ("limit", "0"), ("limit", "1001"), ("limit", "x")):  # fmt: skip
        assert_problem(await api.call("POST", path, params={name: value}), 400, name)
    assert_problem(await api.call("POST", "/data/object/search", params={"limit": "0"}), 400, "limit")
    # The path is checked before the parameters.
    assert_problem(await api.call("POST", f"{path}/nope", params={"limit": "0"}), 404)


# ---------------------------------------------------------------------------------------------------------------
# PUT connection
# ---------------------------------------------------------------------------------------------------------------


async def test_put_connection_replaces_it_and_starts_a_system_sync(api: ImmutaClient, source: Source) -> None:
    key = unique_key("v1put")
    await api.registered(key, source)
    await api.wait_idle(key)
    path = f"/data/connection/{key}"
    before = (await api.call("GET", path)).body

    async def put(connection: dict[str, Any], status: int = 200) -> dict[str, Any]:
        reply = await api.call("PUT", path, json={"connection": connection}, auth="bare")
        assert reply.status == status, reply
        return dict(reply.body)

    accepted = await put(source.connection())
    assert accepted["objectPath"] == [key] and isinstance(accepted["bulkId"], str), accepted
    task = await api.wait_task(key, accepted["bulkId"])
    assert_task(task, "DATA_OBJECT_SYNC", "SYSTEM")
    assert task["status"] == "SUCCEEDED", task

    # Partial updates are not supported: every field is required, the password included.
    for missing in ("technology", "hostname", "port", "database", "username", "password"):
        connection = {k: v for k, v in source.connection().items() if k != missing}
        reply = await api.call("PUT", path, json={"connection": connection}, auth="bare")
        assert_problem(reply, 400, missing)
    assert_problem(await api.call("PUT", path, json={}, auth="bare"), 400, "connection")
    reply = await api.call("PUT", path, json={"connection": source.connection(port="x")}, auth="bare")
    assert_problem(reply, 400, "port")
    reply = await api.call("PUT", path, json={"connection": source.connection(technology="Snowflake")}, auth="bare")
    assert_problem(reply, 400, "technology")
    # A new target with the redacted placeholder instead of the password (A34).
    reply = await api.call("PUT", path, json={"connection": source.connection(hostname="localhost", password=REDACTED)},
                           auth="bare")  # fmt: skip
    assert_problem(reply, 422, "password")
    unchanged = (await api.call("GET", path)).body
    assert unchanged["connection"] == before["connection"], unchanged

    # A PUT to a dead port is accepted (the body is all that is validated); its sync fails: UNHEALTHY.
    port = free_port()
    task = await api.wait_task(key, (await put(source.connection(port=port)))["bulkId"])
    assert task["status"] == "FAILED", task
    changed = (await api.call("GET", path)).body
    assert changed["connection"]["port"] == port and changed["createdAt"] == before["createdAt"], changed
    assert type(changed["updatedBy"]) is int

    async def state(expected: str) -> bool:
        return bool((await api.call("GET", f"/api/connections/{key}")).body["state"] == expected)

    await eventually(lambda: state("UNHEALTHY"), timeout=10)
    task = await api.wait_task(key, (await put(source.connection()))["bulkId"])
    assert task["status"] == "SUCCEEDED", task
    await eventually(lambda: state("ACTIVE"), timeout=10)

    missing_key = f"/data/connection/{unique_key('v1nobody')}"
    assert_problem(await api.call("PUT", missing_key, json={"connection": source.connection()}, auth="bare"), 404)
    assert_problem(await api.call("PUT", missing_key, json={}, auth="bare"), 404)


# ---------------------------------------------------------------------------------------------------------------
# Crawl
# ---------------------------------------------------------------------------------------------------------------


async def test_a_crawl_from_a_sub_path_changes_only_that_subtree(api: ImmutaClient, own_source: Source) -> None:
    key, database = unique_key("v1subcrawl"), own_source.database
    await api.registered(key, own_source)
    await own_source.execute('DROP TABLE sales."order items"; DROP TABLE hr."in/out";')

    await api.crawl(key, database, "sales")
    await api.v1_missing(key, database, "sales", "order items")
    await api.v1_object(key, database, "hr", "in/out")  # outside the crawled subtree: untouched
    assert (await search(api, key, database, "sales"))["count"] == len(SALES) - 1

    await api.crawl(key, database, json={})  # an empty body: forceRecursive false
    await api.v1_missing(key, database, "hr", "in/out")
    assert names((await search(api, key, database, "hr"))["hits"]) == ["employees", "managers"]


async def test_crawl_refuses_the_table_level_unknown_paths_and_bad_flags(api: ImmutaClient, shared: Shared) -> None:
    key, database = shared.key, shared.database
    for table in ("customers", "big_orders", "revenue_by_month"):
        reply = await api.call("POST", "/data/crawl/" + object_path(key, database, "sales", table), auth="bare")
        assert_problem(reply, 400, "table level")
    for missing in ((key, database, "nope"), (key, "nope"), (unique_key("v1nobody"),)):
        assert_problem(await api.call("POST", "/data/crawl/" + object_path(*missing), auth="bare"), 404)
    crawl = "/data/crawl/" + object_path(key, database)
    assert_problem(
        await api.call("POST", crawl, params={"forceRecursive": "maybe"}, auth="bare"), 400, "forceRecursive"
    )
    assert_problem(await api.call("POST", crawl, json={"forceRecursive": "yes"}, auth="bare"), 400, "forceRecursive")


async def test_a_crawl_while_a_sync_runs_is_409(api: ImmutaClient, hanging: Source) -> None:
    key = unique_key("v1busy")
    await api.register(key, hanging.connection())
    task = await api.registration_task(key)

    async def blocked() -> bool:
        return await hanging.blocked_queries() > 0

    await eventually(blocked, timeout=15)
    for body in (None, {"forceRecursive": True}):
        assert_problem(await api.call("POST", f"/data/crawl/{key}", json=body, auth="bare"), 409)
    # A bad request is a 400 before it is a conflict.
    assert_problem(await api.call("POST", f"/data/crawl/{key}", params={"forceRecursive": "maybe"}, auth="bare"), 400)
    assert_problem(await api.call("POST", f"/api/connections/{key}/tasks", json={"type": "DATA_OBJECT_SYNC"}), 409)

    run = await api.only_run(key, task["taskId"])
    reply = await api.call("POST", f"/api/connections/{key}/tasks/{task['taskId']}/runs/{run['runId']}/_cancel")
    assert reply.status == 200, reply
    assert (await api.wait_task(key, task["taskId"], timeout=10))["status"] == "CANCELLED"


# ---------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------


async def test_settings_trickle_down_and_own_overrides_are_respected(api: ImmutaClient, source: Source) -> None:
    key, database = unique_key("v1inherit"), source.database
    await api.registered(key, source)
    await api.wait_idle(key)
    db, sales, hr = (key, database), (key, database, "sales"), (key, database, "hr")

    async def state(*segments: str) -> str:
        found = await api.v1_object(*segments)
        assert_v1_object(found, *segments)  # dataSourceId: an int exactly when active at the table level
        return str(found["state"])

    # An override equal to the inherited value is kept and listed (A31).
    customers = await api.put_settings(*sales, "customers", isActive=True)
    assert_v1_object(customers, *sales, "customers")
    assert customers["overrides"] == ["isActive"] and customers["state"] == "active", customers
    task = await api.task(key, customers["bulkId"])
    assert_task(task, "SETTINGS_UPDATE", "SYSTEM")
    assert task["status"] == "SUCCEEDED", task
    assert (await api.v1_object(*sales))["settings"]["isActive"] == {"value": True, "hasDescendantsWithOverrides": True}
    assert (await api.v1_object(key))["settings"]["isActive"]["hasDescendantsWithOverrides"] is True
    assert (await api.v1_object(*hr))["settings"]["isActive"]["hasDescendantsWithOverrides"] is False
    assert (await api.v1_object(*sales, "customers"))["settings"]["isActive"]["hasDescendantsWithOverrides"] is False

    # Deactivating the database reaches every descendant without its own isActive override.
    deactivated = await api.put_settings(*db, isActive=False)
    assert deactivated["state"] == "inactive" and deactivated["overrides"] == ["isActive"], deactivated
    assert await state(*sales) == "inactive" and (await api.v1_object(*sales))["overrides"] == []
    assert await state(*sales, "orders") == "inactive"
    assert await state(*sales, "customers") == "active"  # its own override is respected
    assert await state(*hr) == "inactive" and await state(*hr, "employees") == "inactive"
    assert setting(await api.v1_object(*hr, "in/out"), "isActive") is False

    # Sales gets its own override; a later change at the database still reaches hr, but not sales.
    await api.put_settings(*sales, isActive=False)
    activated = await api.put_settings(*db, isActive=True)
    task = await api.wait_task(key, activated["bulkId"])
    assert task["status"] == "SUCCEEDED", task
    assert await state(*hr) == "active" and await state(*hr, "employees") == "active"
    assert await state(*sales) == "inactive" and await state(*sales, "orders") == "inactive"
    assert await state(*sales, "customers") == "active"
    assert set((await api.v1_object(*sales))["overrides"]) == {"isActive"}
    assert set((await api.v1_object(*db))["overrides"]) == {"isActive"}
    root = await api.v1_object(key)
    assert root["state"] == "active" and root["overrides"] == [], root


async def test_owners_and_admins_are_additive_below_the_connection(api: ImmutaClient, source: Source) -> None:
    key, database = unique_key("v1owners"), source.database
    await api.registered(key, source)
    await api.wait_idle(key)
    sales, hr = (key, database, "sales"), (key, database, "hr")

    async def owners(*segments: str) -> set[tuple[str, int]]:
        return principals(await api.v1_object(*segments), "dataOwners")

    assert principals(await api.put_settings(key, dataOwners=[U1]), "dataOwners") == {("user", 1)}
    added = await api.put_settings(*sales, dataOwners=[G2])
    assert principals(added, "dataOwners") == {("user", 1), ("group", 2)}, added
    assert set(added["overrides"]) == {"dataOwners"} and setting(added, "isActive") is True, added
    assert await owners(*sales, "orders") == {("user", 1), ("group", 2)}
    assert await owners(*hr) == {("user", 1)} and await owners(*hr, "employees") == {("user", 1)}
    assert (await api.v1_object(key))["settings"]["dataOwners"]["hasDescendantsWithOverrides"] is True
    assert (await api.v1_object(key, database))["settings"]["dataOwners"]["hasDescendantsWithOverrides"] is True
    assert (await api.v1_object(*sales))["settings"]["dataOwners"]["hasDescendantsWithOverrides"] is False

    # Below the connection nothing is removed: an empty list adds nothing.
    assert principals(await api.put_settings(*sales, dataOwners=[]), "dataOwners") == {("user", 1), ("group", 2)}
    # At the connection the list is replaced.
    assert principals(await api.put_settings(key, dataOwners=[]), "dataOwners") == set()
    assert await owners(*sales) == {("group", 2)} and await owners(*sales, "customers") == {("group", 2)}
    assert await owners(*hr) == set()

    admins = await api.put_settings(*hr, infrastructureAdmins=[U7])
    assert principals(admins, "infrastructureAdmins") == {("user", 7)}
    admins = await api.put_settings(*hr, infrastructureAdmins=[G8])
    assert principals(admins, "infrastructureAdmins") == {("user", 7), ("group", 8)}, admins
    assert principals(await api.v1_object(*hr, "managers"), "infrastructureAdmins") == {("user", 7), ("group", 8)}
    assert principals(await api.v1_object(*sales), "infrastructureAdmins") == set()
    assert principals(await api.v1_object(key), "infrastructureAdmins") == set()


async def test_settings_refuse_bad_input_and_change_nothing(api: ImmutaClient, shared: Shared) -> None:
    sales = (shared.key, shared.database, "sales")
    before = await api.v1_object(*sales)
    path = "/data/settings/" + object_path(*sales)
    for body, field in [
        ({"overrides": {"isActive": "yes"}}, "isActive"),
        ({"overrides": {"activateNewChildren": 1}}, "activateNewChildren"),
        ({"overrides": {"color": "red"}}, "color"),
        ({"overrides": {"dataOwners": [{"id": 1, "type": "role"}]}}, "type"),
        ({"overrides": {"dataOwners": [{"id": "one", "type": "user"}]}}, "id"),
        ({"overrides": {"infrastructureAdmins": {"id": 1, "type": "user"}}}, "infrastructureAdmins"),
        ({"overrides": [{"isActive": False}]}, "overrides"),
    ]:
        assert_problem(await api.call("PUT", path, json=body, auth="bare"), 400, field)
    assert await api.v1_object(*sales) == before
    missing = "/data/settings/" + object_path(shared.key, shared.database, "nope")
    assert_problem(await api.call("PUT", missing, json={"overrides": {"isActive": False}}, auth="bare"), 404)
    assert_problem(await api.call("PUT", missing, json={"overrides": {"isActive": "yes"}}, auth="bare"), 404)


async def test_force_recursive_crawls_inactive_subtrees_and_keeps_what_it_finds_inactive(
    api: ImmutaClient, own_source: Source
) -> None:
    key, database = unique_key("v1force"), own_source.database
    await api.registered(key, own_source)
    await api.wait_idle(key)
    hr = (key, database, "hr")
    off = await api.put_settings(*hr, isActive=False)
    assert off["state"] == "inactive" and off["overrides"] == ["isActive"], off
    hr_crawled = (await api.v1_object(*hr))["lastCrawled"]
    await own_source.execute("CREATE TABLE hr.contractors (id int); CREATE TABLE sales.returns (id int);")

    # Without forceRecursive the inactive subtree is neither listed nor changed.
    await api.crawl(key)
    await api.v1_missing(*hr, "contractors")
    assert (await api.v1_object(*hr))["lastCrawled"] == hr_crawled
    assert (await api.v1_object(key, database, "sales", "returns"))["state"] == "active"

    # forceRecursive in the body (the seed's curl): found, and inactive.
    await api.crawl(key, json={"forceRecursive": True})
    contractors = await api.v1_object(*hr, "contractors")
    assert contractors["state"] == "inactive" and contractors["dataSourceId"] is None, contractors

    # In the query (the seed's table); the query wins over the body (A13).
    await own_source.execute("CREATE TABLE hr.interns (id int);")
    await api.crawl(key, params={"forceRecursive": False}, json={"forceRecursive": True})
    await api.v1_missing(*hr, "interns")
    await api.crawl(key, params={"forceRecursive": True})
    interns = await api.v1_object(*hr, "interns")
    assert interns["state"] == "inactive" and interns["dataSourceId"] is None, interns

    # Activating the subtree again: its objects follow (they had no isActive override of their own, A10).
    on = await api.put_settings(*hr, isActive=True)
    task = await api.wait_task(key, on["bulkId"])
    assert task["status"] == "SUCCEEDED", task
    for name in ("employees", "contractors", "interns"):
        found = await api.v1_object(*hr, name)
        assert found["state"] == "active" and isinstance(found["dataSourceId"], int), found


async def test_new_children_of_a_parent_not_activating_them_arrive_inactive(
    api: ImmutaClient, own_source: Source
) -> None:
    key, database = unique_key("v1newkids"), own_source.database
    await api.registered(key, own_source)
    await api.wait_idle(key)
    sales = (key, database, "sales")
    changed = await api.put_settings(*sales, activateNewChildren=False)
    assert changed["overrides"] == ["activateNewChildren"] and setting(changed, "activateNewChildren") is False
    assert changed["state"] == "active", changed
    assert (await api.v1_object(key))["settings"]["activateNewChildren"]["hasDescendantsWithOverrides"] is True
    assert setting(await api.v1_object(*sales, "orders"), "activateNewChildren") is False  # inherited
    assert (await api.v1_object(*sales, "orders"))["state"] == "active"  # existing children stay as they are

    await own_source.execute("CREATE TABLE sales.refunds (id int); CREATE TABLE hr.trainees (id int);")
    await api.crawl(key)
    refunds = await api.v1_object(*sales, "refunds")
    assert refunds["state"] == "inactive" and refunds["dataSourceId"] is None, refunds
    assert "isActive" in refunds["overrides"] and setting(refunds, "isActive") is False, refunds
    trainees = await api.v1_object(key, database, "hr", "trainees")
    assert trainees["state"] == "active" and isinstance(trainees["dataSourceId"], int), trainees
    assert trainees["overrides"] == [], trainees


# ---------------------------------------------------------------------------------------------------------------
# Delete
# ---------------------------------------------------------------------------------------------------------------


async def test_deleting_objects_counts_all_descendants_and_deleting_the_root_deregisters(
    api: ImmutaClient, source: Source
) -> None:
    key, database = unique_key("v1delete"), source.database
    await api.registered(key, source)
    await api.wait_idle(key)

    async def delete(*segments: str) -> int:
        reply = await api.call("DELETE", "/data/object/" + object_path(*segments), auth="bare")
        assert reply.status == 200, reply
        assert reply.body["objectPath"] == list(segments), reply
        return int(reply.body["childCount"])

    assert await delete(key, database, "sales") == len(SALES)
    await api.v1_missing(key, database, "sales")
    await api.v1_missing(key, database, "sales", "customers")
    assert names((await search(api, key, database))["hits"]) == ["hr"]
    assert await delete(key, database, "hr", "in/out") == 0
    await api.v1_missing(key, database, "hr", "in/out")
    assert_problem(await api.call("DELETE", "/data/object/" + object_path(key, database, "sales"), auth="bare"), 404)

    # Still at the source: the next crawl finds them again (A17).
    await api.crawl(key)
    assert (await search(api, key, database, "sales"))["count"] == len(SALES)
    await api.v1_object(key, database, "hr", "in/out")

    await api.wait_idle(key)
    assert await delete(key) == DESCENDANTS_OF_ROOT
    assert_problem(await api.call("GET", f"/data/connection/{key}"), 404)
    await api.v1_missing(key)
    assert_problem(await api.call("GET", f"/api/connections/{key}"), 404)
    assert (await api.call("GET", f"/api/integrations/{key}", auth="x-api-key")).status == 404
    assert await search(api, searchText=key) == {"count": 0, "hits": []}
    assert_problem(await api.call("DELETE", f"/data/object/{key}", auth="bare"), 404)


# ---------------------------------------------------------------------------------------------------------------
# Authentication and teams
# ---------------------------------------------------------------------------------------------------------------


async def test_bearer_bare_and_x_api_key_work_on_data_and_a_missing_or_wrong_key_is_401(
    api: ImmutaClient, shared: Shared, source: Source
) -> None:
    key = shared.key
    for auth in AUTH_FORMS:
        assert (await api.call("GET", f"/data/connection/{key}", auth=auth)).status == 200, auth
        assert (await api.call("GET", f"/data/object/{key}", auth=auth)).status == 200, auth
        assert (await api.call("POST", f"/data/object/search/{key}", auth=auth)).status == 200, auth
        assert_problem(await api.call("GET", f"/data/connection/{key}", auth=auth, key="not-" + ADMIN_KEY), 401)
    root = await api.v1_object(key)
    for method, path, body in [
        ("GET", f"/data/connection/{key}", None),
        ("GET", f"/data/connection/{unique_key('v1nobody')}", None),  # authentication comes first
        ("GET", f"/data/object/{key}", None),
        ("POST", "/data/object/search", None),
        ("POST", f"/data/object/search/{key}", None),
        ("PUT", f"/data/connection/{key}", {"connection": source.connection()}),
        ("POST", f"/data/crawl/{key}", None),
        ("PUT", f"/data/settings/{key}", {"overrides": {"isActive": False}}),
        ("DELETE", f"/data/object/{key}", None),
    ]:
        assert_problem(await api.call(method, path, json=body, auth="none"), 401)
    assert await api.v1_object(key) == root, "an unauthenticated request changed something"


async def test_team_keys_reach_only_their_teams_connections_on_data(api: ImmutaClient, source: Source) -> None:
    team_a, team_b = unique_key("v1team-a"), unique_key("v1team-b")
    editor_a = await api.team_key(team_a, ["INGESTION_VIEW", "INGESTION_EDIT"])
    viewer_a = await api.team_key(team_a, ["INGESTION_VIEW"])
    editor_b = await api.team_key(team_b, ["INGESTION_VIEW", "INGESTION_EDIT"])
    key = unique_key("v1teamconn")
    await api.register(key, source.connection(), api_key=editor_a)
    await api.wait_task(key, (await api.registration_task(key))["taskId"])
    await api.wait_idle(key)

    calls: list[tuple[str, str, Any]] = [
        ("GET", f"/data/connection/{key}", None),
        ("GET", f"/data/object/{key}", None),
        ("POST", f"/data/object/search/{key}", None),
        ("PUT", f"/data/connection/{key}", {"connection": source.connection()}),
        ("POST", f"/data/crawl/{key}", None),
        ("PUT", f"/data/settings/{key}", {"overrides": {"isActive": False}}),
        ("DELETE", f"/data/object/{key}", None),
    ]
    for method, path, body in calls:
        assert_problem(await api.call(method, path, json=body, key=editor_b, auth="bare"), 404)
    reply = await api.call("POST", "/data/object/search", params={"searchText": key}, key=editor_b)
    assert reply.status == 200 and reply.body == {"count": 0, "hits": []}, reply

    assert (await api.call("GET", f"/data/connection/{key}", key=viewer_a)).status == 200
    assert (await api.call("GET", f"/data/object/{key}", key=viewer_a)).status == 200
    reply = await api.call("POST", "/data/object/search", params={"searchText": key}, key=viewer_a)
    assert reply.status == 200 and reply.body["count"] == 1, reply
    assert_problem(await api.call("POST", f"/data/crawl/{key}", key=viewer_a, auth="bare"), 403)
    reply = await api.call("PUT", f"/data/settings/{key}", json={"overrides": {"isActive": False}}, key=viewer_a)
    assert_problem(reply, 403)
    assert (await api.v1_object(key))["state"] == "active"
    assert (await api.call("GET", f"/data/object/{key}", key=editor_a, auth="bare")).status == 200
