"""What an Immuta client needs to drive the v1 `/data` and v2 `/api/connections` dialects end to end.

Written from /work/shared/specs/immuta.md (A1-A34) and the design note, not from the implementation: a source
database of known shape, a client that can authenticate the three ways the spec allows and send percent-encoded
paths untouched, and polling helpers for tasks and runs.
"""

from __future__ import annotations

import json as jsonlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlparse

import aiohttp
import asyncpg
from yarl import URL

from tests.support import eventually, recreate_database

REDACTED = "[REDACTED]"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
# The seed's pattern for task and run ids.
SEED_UUID = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000)$"
)
RESERVED = ("data", "connection", "object", "crawl", "search", "settings", "metadata", "permission", "sync", "bulk",
            "upgrade")  # fmt: skip
SETTING_NAMES = {"isActive", "activateNewChildren", "dataOwners", "infrastructureAdmins"}
V1_OBJECT_FIELDS = {"objectPath", "technology", "state", "settings", "overrides", "dataSourceId", "createdAt",
                    "lastCrawled", "remoteId"}  # fmt: skip
V2_OBJECT_REQUIRED = {"id", "name", "type", "normalizedType", "technology", "remoteId", "lastSyncedAt",
                      "connectionKey", "createdBy", "createdAt", "updatedBy", "updatedAt"}  # fmt: skip

# ---------------------------------------------------------------------------------------------------------------
# The source database
# ---------------------------------------------------------------------------------------------------------------

# Two schemas (public is dropped so the shape is exact), tables and views in each, a table whose name has a space,
# one whose name has a '/', a materialized view. Sibling names sort the same under C and glibc collations.
# customers and employees are wide so that dropping the two narrow tables stays far below any deletion fail-safe.
SOURCE_SQL = """
DROP SCHEMA IF EXISTS public CASCADE;
CREATE SCHEMA sales;
CREATE TABLE sales.customers (id int PRIMARY KEY, name text NOT NULL, email text, phone text, street text,
                              city text, zip text, country text, segment text, since date);
CREATE TABLE sales.orders (id bigint PRIMARY KEY, customer_id int REFERENCES sales.customers (id),
                           total numeric(12, 2), placed_at timestamptz, status text);
CREATE TABLE sales."order items" (order_id bigint, sku text);
CREATE VIEW sales.big_orders AS SELECT id, total FROM sales.orders WHERE total > 100;
CREATE MATERIALIZED VIEW sales.revenue_by_month AS
    SELECT date_trunc('month', placed_at) AS month, sum(total) AS revenue FROM sales.orders GROUP BY 1;
CREATE SCHEMA hr;
CREATE TABLE hr.employees (id int PRIMARY KEY, name text NOT NULL, email text, title text, department text,
                           manager_id int, hired date, salary numeric, office text, phone text);
CREATE TABLE hr."in/out" (employee_id int, at timestamptz);
CREATE VIEW hr.managers AS SELECT id, name FROM hr.employees WHERE manager_id IS NULL;
"""
# The view the crawl reads and a test can lock (the `locked_view` trick of conftest.py).
LOCKABLE_VIEW = "sales.big_orders"

# (name, type) per schema, in the order "by name" gives.
SALES = [("big_orders", "view"), ("customers", "table"), ("order items", "table"), ("orders", "table"),
         ("revenue_by_month", "materialized_view")]  # fmt: skip
HR = [("employees", "table"), ("in/out", "table"), ("managers", "view")]
TABLE_LEVEL = {"table", "view", "materialized_view", "foreign_table"}
# Below the root: the database, two schemas, eight table-level objects.
DESCENDANTS_OF_ROOT = 1 + 2 + len(SALES) + len(HR)


@dataclass(frozen=True)
class Source:
    """A PostgreSQL database of known shape, with a login role that only this source's connections use."""

    admin_dsn: str  # superuser: changes the source, holds locks
    hostname: str
    port: int
    database: str
    username: str
    password: str

    def connection(self, **changes: Any) -> dict[str, Any]:
        """The flat `connection` object of a create / PUT body (A18, A34), with optional changes."""
        return {
            "technology": "PostgreSQL",
            "hostname": self.hostname,
            "port": self.port,
            "database": self.database,
            "authenticationType": "userPassword",
            "username": self.username,
            "password": self.password,
        } | changes

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def blocked_queries(self) -> int:
        """Sessions on this database waiting for a lock (a crawl stuck behind `locked`)."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", self.database
            )
        finally:
            await conn.close()
        return int(count)


async def create_source(stack_dsn: str, name: str) -> Source:
    admin = await recreate_database(stack_dsn, name)
    role, password = f"immuta_{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(SOURCE_SQL)
        await conn.execute(f"""
            CREATE ROLE {role} LOGIN PASSWORD '{password}';
            GRANT CONNECT ON DATABASE "{name}" TO {role};
            GRANT USAGE ON SCHEMA sales, hr TO {role};
            GRANT SELECT ON ALL TABLES IN SCHEMA sales, hr TO {role};
            ALTER DEFAULT PRIVILEGES IN SCHEMA sales, hr GRANT SELECT ON TABLES TO {role};
        """)  # fmt: skip
    finally:
        await conn.close()
    url = urlparse(admin)
    assert url.hostname and url.port
    return Source(admin, url.hostname, url.port, name, role, password)


@asynccontextmanager
async def locked(source: Source) -> AsyncIterator[None]:
    """Hold an exclusive lock on a view the crawl reads: a sync of this source hangs until released."""
    conn = await asyncpg.connect(source.admin_dsn)
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute(f"LOCK TABLE {LOCKABLE_VIEW} IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await conn.close()


# ---------------------------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------------------------

Auth = Literal["bearer", "bare", "x-api-key", "none"]
AUTH_FORMS: tuple[Auth, ...] = ("bearer", "bare", "x-api-key")


@dataclass
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str]

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


class ImmutaClient:
    """HTTP as an Immuta client speaks it: Bearer by default, paths sent exactly as given (%2F stays %2F)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self._session = session
        self._base = base
        self.key = key

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: str | None = None,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
        auth: Auth = "bearer",
    ) -> Reply:
        secret = key or self.key
        headers = {"accept": "application/json"}
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {secret}"
        elif auth == "bare":
            headers["Authorization"] = secret
        elif auth == "x-api-key":
            headers["x-api-key"] = secret
        if params:
            path += ("&" if "?" in path else "?") + urlencode(
                {k: _param(v) for k, v in params.items()}, quote_via=quote
            )
        kwargs: dict[str, Any] = {"headers": headers}
        if json is not None:  # None: no body at all
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
            headers["Content-Type"] = "application/json"
        async with self._session.request(method, URL(self._base + path, encoded=True), **kwargs) as response:
            text = await response.text()
            body: Any = None
            if text:
                try:
                    body = jsonlib.loads(text)
                except ValueError:
                    body = text
            return Reply(response.status, body, response.headers)

    # -- v2 ------------------------------------------------------------------------------------------------------

    async def register(self, key: str, connection: dict[str, Any], api_key: str | None = None) -> dict[str, Any]:
        reply = await self.call("POST", "/api/connections", json={"connectionKey": key, "connection": connection},
                                key=api_key)  # fmt: skip
        assert reply.status == 201, reply
        return dict(reply.body)

    async def registered(self, key: str, source: Source) -> dict[str, Any]:
        """Register and wait until the first sync (started by the registration) SUCCEEDED."""
        created = await self.register(key, source.connection())
        task = await self.wait_task(key, (await self.registration_task(key))["taskId"])
        assert task["status"] == "SUCCEEDED", task
        return created

    async def tasks(self, key: str, **filters: str) -> list[dict[str, Any]]:
        """Every task of the connection (all pages), newest first."""
        params = {f"filter[{name}]": value for name, value in filters.items()}
        pages = await get_pages(self, f"/api/connections/{key}/tasks", "tasks", 100, params)
        return [task for page in pages for task in page]

    async def registration_task(self, key: str) -> dict[str, Any]:
        """The DATA_OBJECT_SYNC task the registration started (the oldest sync task)."""

        async def probe() -> dict[str, Any] | None:
            syncs = await self.tasks(key, type="DATA_OBJECT_SYNC")
            return syncs[-1] if syncs else None

        return await eventually(probe, timeout=10)

    async def task(self, key: str, task_id: str) -> dict[str, Any]:
        reply = await self.call("GET", f"/api/connections/{key}/tasks/{task_id}")
        assert reply.status == 200, reply
        return dict(reply.body)

    async def wait_task(
        self, key: str, task_id: str, statuses: frozenset[str] = TERMINAL, timeout: float = 30
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            task = await self.task(key, task_id)
            return task if task["status"] in statuses else None

        return await eventually(probe, timeout=timeout)

    async def only_run(self, key: str, task_id: str) -> dict[str, Any]:
        """The one run of a task (parentId is unused; one task has one run)."""
        reply = await self.call("GET", f"/api/connections/{key}/tasks/{task_id}/runs")
        assert reply.status == 200 and len(reply.body["runs"]) == 1, reply
        return dict(reply.body["runs"][0])

    async def run(self, key: str, task_id: str, run_id: str) -> dict[str, Any]:
        reply = await self.call("GET", f"/api/connections/{key}/tasks/{task_id}/runs/{run_id}")
        assert reply.status == 200, reply
        return dict(reply.body)

    async def wait_idle(self, key: str, timeout: float = 30) -> None:
        """Until no task of the connection is PENDING or RUNNING."""

        async def probe() -> bool:
            return all(task["status"] in TERMINAL for task in await self.tasks(key))

        await eventually(probe, timeout=timeout)

    async def sync(self, key: str) -> dict[str, Any]:
        """A manual DATA_OBJECT_SYNC, waited for; it must succeed."""
        await self.wait_idle(key)
        reply = await self.call("POST", f"/api/connections/{key}/tasks", json={"type": "DATA_OBJECT_SYNC"})
        assert reply.status == 200, reply
        task = await self.wait_task(key, reply.body["taskId"])
        assert task["status"] == "SUCCEEDED", task
        return task

    async def search(self, key: str, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
        """Every data object `_search` finds (all pages)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):
            page: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            reply = await self.call("POST", "/api/connections/dataObjects/_search",
                                    json={"connectionKey": key, **filters, "page": page})  # fmt: skip
            assert reply.status == 200, reply
            found += reply.body["dataObjects"]
            cursor = reply.body["page"].get("nextCursor")
            if not cursor:
                return found
        raise AssertionError("_search never reached its last page")

    async def data_object(self, key: str, remote_id: str) -> dict[str, Any]:
        """The data object with this remoteId (A8: `db`, `db.schema`, `db.schema.table`, the key for the root)."""
        matches = [o for o in await self.search(key) if o["remoteId"] == remote_id]
        assert len(matches) == 1, (remote_id, matches)
        return matches[0]

    # -- v1 ------------------------------------------------------------------------------------------------------

    async def v1_object(self, *segments: str) -> dict[str, Any]:
        reply = await self.call("GET", "/data/object/" + object_path(*segments))
        assert reply.status == 200, reply
        return dict(reply.body)

    async def v1_missing(self, *segments: str) -> None:
        reply = await self.call("GET", "/data/object/" + object_path(*segments))
        assert_problem(reply, 404)

    async def crawl(self, *segments: str, params: Mapping[str, Any] | None = None, json: Any = None) -> None:
        """A v1 crawl, waited for through its bulkId (= the taskId, A29); it must succeed."""
        await self.wait_idle(segments[0])
        reply = await self.call("POST", "/data/crawl/" + object_path(*segments), params=params, json=json, auth="bare")
        assert reply.status == 200, reply
        assert reply.body["objectPath"] == list(segments), reply
        task = await self.wait_task(segments[0], reply.body["bulkId"])
        assert task["status"] == "SUCCEEDED" and task["type"] == "DATA_OBJECT_SYNC", task

    async def put_settings(self, *segments: str, **overrides: Any) -> dict[str, Any]:
        reply = await self.call("PUT", "/data/settings/" + object_path(*segments), json={"overrides": overrides},
                                auth="bare")  # fmt: skip
        assert reply.status == 200, reply
        assert reply.body["objectPath"] == list(segments) and reply.body["bulkId"], reply
        return dict(reply.body)

    async def team_key(self, team: str, permissions: list[str]) -> str:
        """A key with `permissions` on `team` (the team is created if needed)."""
        reply = await self.call("POST", "/api/teams", json={"externalId": team, "name": team}, auth="x-api-key")
        assert reply.status in (201, 409), reply
        grants = [{"teamExternalId": team, "permissions": permissions}]
        reply = await self.call("POST", "/api/api-keys", json={"name": f"{team} {'+'.join(permissions)}",
                                                               "teams": grants}, auth="x-api-key")  # fmt: skip
        assert reply.status == 201, reply
        return str(reply.body["key"])


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def object_path(*segments: str) -> str:
    """The URL form of an objectPath: each name percent-encoded (a space as %20, a '/' inside a name as %2F)."""
    return "/".join(quote(segment, safe="") for segment in segments)


async def get_pages(
    client: ImmutaClient, path: str, items: str, limit: int, params: Mapping[str, Any] | None = None
) -> list[list[dict[str, Any]]]:
    """Walk a v2 cursor listing to its end; every page but a lone first one must hold something."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {"page[limit]": limit, **(params or {})} | ({"page[cursor]": cursor} if cursor else {})
        reply = await client.call("GET", path, params=query)
        assert reply.status == 200, reply
        assert set(reply.body) >= {items, "page"} and len(reply.body[items]) <= limit, reply
        assert not pages or reply.body[items], f"an empty page after a nextCursor: {reply}"
        pages.append(reply.body[items])
        cursor = reply.body["page"].get("nextCursor")
        if not cursor:
            return pages
    raise AssertionError(f"{path} never reached its last page")


# ---------------------------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------------------------


def assert_problem(reply: Reply, status: int, *mentions: str) -> None:
    """An error as A2 has it: problem+json with `message` (= detail) and `statusCode`, naming what is wrong."""
    assert reply.status == status, reply
    assert reply.headers.get("Content-Type", "").startswith("application/problem+json"), reply.headers
    body = reply.body
    assert isinstance(body, dict), reply
    assert body.get("statusCode") == status and body.get("status") == status, body
    assert isinstance(body.get("message"), str) and body["message"] and body["message"] == body.get("detail"), body
    assert body.get("title") and body.get("type"), body
    said = " ".join([body["message"]] + [f"{e.get('field')} {e.get('message')}" for e in body.get("errors") or []])
    for mention in mentions:
        assert mention.lower() in said.lower(), (mention, body)


def is_timestamp(value: Any) -> bool:
    """ISO-8601 in UTC, ending in Z."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        return False
    return True


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value[:-1] + "+00:00")


def assert_task(task: dict[str, Any], type_: str | None = None, trigger: str | None = None) -> None:
    assert set(task) >= {"taskId", "type", "status", "trigger", "createdBy", "createdAt"}, task
    assert SEED_UUID.match(task["taskId"]), task
    assert task["status"] in {"PENDING", "RUNNING"} | TERMINAL, task
    assert task["trigger"] in {"MANUAL", "SCHEDULED", "SYSTEM"}, task
    assert isinstance(task["createdBy"], str) and task["createdBy"], task
    assert is_timestamp(task["createdAt"]), task
    if type_:
        assert task["type"] == type_, task
    if trigger:
        assert task["trigger"] == trigger, task
        if trigger == "SYSTEM":
            assert task["createdBy"] == "system", task


def assert_run(run: dict[str, Any]) -> None:
    assert set(run) >= {"runId", "status", "createdAt", "updatedAt"}, run
    assert SEED_UUID.match(run["runId"]), run
    assert is_timestamp(run["createdAt"]) and is_timestamp(run["updatedAt"]), run
    if run["status"] in {"RUNNING", "SUCCEEDED"}:
        assert is_timestamp(run.get("startedAt")), run
    if run["status"] in TERMINAL:
        assert is_timestamp(run.get("completedAt")), run


def assert_connection(resource: dict[str, Any], key: str, source: Source, **expected: Any) -> None:
    """The v2 connection resource (A18): the flat connection object, the password always redacted."""
    assert set(resource) >= {"connectionKey", "connection", "state", "createdAt", "createdBy", "updatedAt",
                             "updatedBy"}, resource  # fmt: skip
    assert resource["connectionKey"] == key, resource
    want = source.connection(password=REDACTED) | expected
    assert {name: resource["connection"].get(name) for name in want} == want, resource
    assert resource["state"] in {"ACTIVE", "INACTIVE", "UNHEALTHY"}, resource
    assert is_timestamp(resource["createdAt"]) and is_timestamp(resource["updatedAt"]), resource
    assert isinstance(resource["createdBy"], str) and isinstance(resource["updatedBy"], str), resource
    assert source.password not in str(resource), resource


def assert_v2_object(found: dict[str, Any], key: str) -> None:
    assert set(found) >= V2_OBJECT_REQUIRED, found
    uuid.UUID(found["id"])
    assert found["connectionKey"] == key and found["technology"] == "PostgreSQL", found
    assert found["normalizedType"] in {"CONNECTION", "DATABASE", "SCHEMA", "TABLE"}, found
    assert isinstance(found["remoteId"], str) and found["remoteId"], found
    for stamp in ("lastSyncedAt", "createdAt", "updatedAt"):
        assert is_timestamp(found[stamp]), (stamp, found)
    assert isinstance(found["createdBy"], str) and isinstance(found["updatedBy"], str), found


def assert_v1_object(found: dict[str, Any], *segments: str) -> None:
    assert set(found) >= V1_OBJECT_FIELDS, found
    assert found["objectPath"] == list(segments), found
    assert found["technology"] == "PostgreSQL" and found["state"] in {"active", "inactive"}, found
    assert set(found["settings"]) == SETTING_NAMES, found
    for setting in found["settings"].values():
        assert set(setting) == {"value", "hasDescendantsWithOverrides"}, found
    assert set(found["overrides"]) <= SETTING_NAMES, found
    assert is_timestamp(found["createdAt"]), found
    assert found["lastCrawled"] is None or is_timestamp(found["lastCrawled"]), found
    table_level = len(segments) == 4
    if found["state"] == "active" and table_level:
        assert isinstance(found["dataSourceId"], int) and not isinstance(found["dataSourceId"], bool), found
    else:
        assert found["dataSourceId"] is None, found


def setting(found: dict[str, Any], name: str) -> Any:
    return found["settings"][name]["value"]


def principals(found: dict[str, Any], name: str) -> set[tuple[str, int]]:
    return {(p["type"], p["id"]) for p in setting(found, name)}


def unique_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
