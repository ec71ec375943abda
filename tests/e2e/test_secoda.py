"""The Secoda dialect over HTTP, as Secoda's clients call it: integrations by id, the page envelope, Slack."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_KEY, Stack
from tests.support import eventually

pytestmark = pytest.mark.e2e

FIELDS = {
    "id", "created_at", "updated_at", "name", "type", "credentials", "workspace_id", "ssh_tunnel", "execute_access",
    "scheduled_extractions_hour", "scheduled_extractions_frequency", "scheduled_extractions_next_run",
    "scheduled_extractions_last_run", "properties", "preview_access_users", "preview_access_roles",
    "preview_access_groups", "teams",
}  # fmt: skip
BASE = "/api/v1/integration/integrations"


class Secoda:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(self, method: str, path: str, key: str | None = ADMIN_KEY, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, Any]:  # fmt: skip
        headers = (headers or {}) | ({"Authorization": f"Bearer {key}"} if key else {})
        async with self.session.request(method, self.url + path, headers=headers, allow_redirects=False,
                                        **kwargs) as response:  # fmt: skip
            body = await response.json(content_type=None) if response.content_length != 0 else None
            return response.status, body


@pytest.fixture
async def secoda(stack: Stack) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Secoda(session, stack.url)


async def test_a_custom_integration_is_created_read_and_deleted_with_all_its_fields(secoda: Secoda) -> None:
    status, created = await secoda.call("POST", BASE, json={"name": "Warehouse docs", "type": "custom"})
    assert status == 201 and set(created) == FIELDS, created
    assert (created["type"], created["credentials"], created["teams"], created["scheduled_extractions_hour"]) == (
        "custom", {}, [], None)  # fmt: skip
    uuid.UUID(created["id"])
    for path in (f"{BASE}/{created['id']}", f"{BASE}/{created['id']}/"):  # both slash forms, no redirect
        status, got = await secoda.call("GET", path)
        assert (status, got) == (200, created)
    # The same integration, seen by our own dialect under its id as externalId.
    async with secoda.session.get(f"{secoda.url}/api/integrations/{created['id']}",
                                  headers={"x-api-key": ADMIN_KEY}) as response:  # fmt: skip
        assert response.status == 200 and (await response.json())["source"] == "custom"
    assert (await secoda.call("DELETE", f"{BASE}/{created['id']}"))[0] == 204
    assert (await secoda.call("GET", f"{BASE}/{created['id']}"))[0] == 404
    assert (await secoda.call("DELETE", f"{BASE}/{created['id']}"))[0] == 404


async def test_bad_creates_are_400s_naming_the_field_and_store_nothing(secoda: Secoda) -> None:
    _, before = await secoda.call("GET", BASE)
    for body, field in [
        ({"name": "x"}, "type"),
        ({"type": "databricks"}, "type"),  # a platform with no spec
        ({"type": "custom", "credentials": {"token": "x"}}, "credentials"),
        ({"type": "custom", "teams": ["no-such-team"]}, "teams"),
        ({"type": "postgres", "credentials": {"host": "db"}}, "credentials"),
    ]:
        status, problem = await secoda.call("POST", BASE, json=body)
        assert status == 400 and field in problem["detail"], (body, problem)
    status, problem = await secoda.call("POST", BASE, data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400
    _, after = await secoda.call("GET", BASE)
    assert after["count"] == before["count"]


async def test_a_postgres_integration_is_crawlable_and_its_password_never_returned(secoda: Secoda) -> None:
    credentials = {"host": "127.0.0.1", "port": 5432, "database": "db", "user": "reader", "password": "s3cret-pw"}
    status, problem = await secoda.call("POST", BASE, json={"type": "postgres", "credentials": credentials | {
        "port": "not-a-port"}})  # fmt: skip
    assert status == 400 and "credentials.port" in problem["detail"] and "s3cret-pw" not in str(problem), problem
    status, created = await secoda.call("POST", BASE, json={"type": "postgres", "credentials": credentials})
    assert status == 201 and created["name"] == "Untitled" and created["credentials"] == {}, created
    listed = await every_page(secoda, f"{BASE}?type=postgres")
    assert created in listed and all(i["type"] == "postgres" for i in listed)
    assert "s3cret-pw" not in str(listed)
    async with secoda.session.get(f"{secoda.url}/api/connections/{created['id']}",
                                  headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as response:  # fmt: skip
        connection = await response.json()
    assert response.status == 200 and connection["connection"]["username"] == "reader"


async def every_page(secoda: Secoda, path: str) -> list[dict[str, Any]]:
    """Every result, following `links.next` as a client does (oldest first: a new one is on the last page)."""
    results: list[dict[str, Any]] = []
    while path:
        status, page = await secoda.call("GET", path)
        assert status == 200, page
        results += page["results"]
        following = urlsplit(page["links"]["next"] or "")
        path = f"{following.path}?{following.query}" if page["links"]["next"] else ""
    return results


async def test_pages_follow_secodas_envelope_with_absolute_links(secoda: Secoda) -> None:
    kind = "dbt_core"
    ids = []
    for _ in range(51):
        status, created = await secoda.call("POST", BASE, json={"type": kind, "name": f"dbt {uuid.uuid4().hex[:6]}"})
        assert status == 201
        ids.append(created["id"])
    status, first = await secoda.call("GET", BASE, params={"type": kind})
    assert status == 200 and first["count"] >= 51 and first["total_pages"] >= 2 and len(first["results"]) == 50
    assert first["links"]["previous"] is None and first["meta"]["previous_page"] is None
    following = urlsplit(first["links"]["next"])
    assert following.scheme == "http" and "type=dbt_core" in following.query and "page=2" in following.query
    status, second = await secoda.call("GET", f"{following.path}?{following.query}")
    assert status == 200 and second["meta"]["page"] == 2 and second["meta"]["previous_page"] == 1
    seen = [i["id"] for i in first["results"] + second["results"]]
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)
    for page in ("0", "x", "999"):
        status, problem = await secoda.call("GET", BASE, params={"page": page})
        assert status == 404 and problem["detail"] == "Invalid page."
    status, unknown = await secoda.call("GET", BASE, params={"type": "no-such-type"})
    assert status == 200 and (unknown["count"], unknown["results"], unknown["total_pages"]) == (0, [], 1)


async def test_every_path_needs_a_key_and_slack_lists_no_conversations(secoda: Secoda) -> None:
    for path in (BASE, f"{BASE}/", "/api/v2/integration_v2/slack/conversations/list/"):
        for key in (None, "not-a-key"):
            status, problem = await secoda.call("GET", path, key=key)
            assert status == 401 and problem["detail"], problem
    for path in ("/api/v2/integration_v2/slack/conversations/list/", "/api/v2/integration_v2/slack/conversations/list"):
        assert await secoda.call("GET", path) == (200, [])
    status, _ = await secoda.call("GET", f"{BASE}/not-a-uuid")
    assert status == 404


async def test_secodas_python_client_creates_lists_and_gets_integrations_unchanged(
    stack: Stack, secoda: Secoda
) -> None:
    """pysecoda 0.1.2, pointed at our /api/v1 (it calls both slash forms; `requests`, so in a thread). Its key is a
    team's, so its listing is that team's few integrations: pysecoda appends `links.next` to its base URL, which
    breaks on the absolute links Secoda's envelope has (a client bug; one page never follows a link)."""
    from pysecoda.api_client import APIClient
    from pysecoda.endpoints.integrations import IntegrationsEndpoint

    team = f"pysecoda-{uuid.uuid4().hex[:8]}"
    assert (await secoda.call("POST", "/api/teams", json={"externalId": team, "name": team}))[0] == 201
    grant = [{"teamExternalId": team, "permissions": ["INGESTION_VIEW", "INGESTION_EDIT"]}]
    status, issued = await secoda.call("POST", "/api/api-keys", json={"name": team, "teams": grant})
    assert status == 201, issued

    def drive() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        integrations = IntegrationsEndpoint(APIClient(f"{stack.url}/api/v1", issued["key"]))
        created = integrations.create_integration(name="From pysecoda", type="custom")
        return created, integrations.get_integrations(), integrations.get_integration(created["id"])

    created, listed, got = await asyncio.to_thread(drive)
    assert created["name"] == "From pysecoda" and created["type"] == "custom" and got == created
    assert listed == [created] and len(created["teams"]) == 1  # owned by the key's one team


async def test_deleting_an_integration_stops_its_running_sync(secoda: Secoda, shop_dsn: str, locked_view: None,
                                                              db) -> None:  # fmt: skip
    """DELETE answers 204 at once and the connector is told to stop: its crawl, blocked on a locked view of the
    source, goes away instead of running on for an integration that no longer exists."""
    url = urlsplit(shop_dsn)
    credentials = {"host": url.hostname, "port": url.port, "database": url.path.lstrip("/"), "user": url.username,
                   "password": url.password, "sslmode": "disable"}  # fmt: skip
    status, created = await secoda.call("POST", BASE, json={"type": "postgres", "credentials": credentials})
    assert status == 201, created
    async with secoda.session.post(f"{secoda.url}/api/integrations/{created['id']}/run",
                                   headers={"x-api-key": ADMIN_KEY}) as response:  # fmt: skip
        assert response.status == 202, await response.text()

    async def blocked_crawls() -> int:
        return int(await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            url.path.lstrip("/")))  # fmt: skip

    await eventually(blocked_crawls, timeout=30)  # the sync is running, stuck on the view
    assert (await secoda.call("DELETE", f"{BASE}/{created['id']}"))[0] == 204
    await eventually(lambda: _none(blocked_crawls), timeout=30)
    assert (await secoda.call("GET", f"{BASE}/{created['id']}"))[0] == 404


async def _none(count: Any) -> bool:
    return await count() == 0
