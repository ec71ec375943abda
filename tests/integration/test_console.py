"""The web console through aiohttp's test client against the real database: login, CSRF, team scoping, escaping,
and the run page's live stream."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.core import ingestion
from services.core.access import AccessService, NewApiKey, NewTeam
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration

ADMIN_KEY = "console-admin-" + uuid.uuid4().hex
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def console(database: str, kafka_bootstrap: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    settings = ApiSettings(APP_ENV="test", DATABASE_URL=database, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                           BOOTSTRAP_API_KEY=ADMIN_KEY)  # fmt: skip
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def log_in(client: TestClient, key: str) -> str:
    """Log in as `key`; the session's CSRF token (from the page the login lands on)."""
    form = await client.get("/console/login")
    token = CSRF.search(await form.text()).group(1)
    landed = await client.post("/console/login", data={"api_key": key, "csrf": token})
    assert landed.status == 200, await landed.text()
    return CSRF.search(await landed.text()).group(1)


async def team_key(runtime, permissions: list[str]) -> tuple[str, str]:
    """A new team and a key with `permissions` on it: (team externalId, key)."""
    team = f"console-{uuid.uuid4().hex[:8]}"
    access = AccessService(runtime)
    await access.create_team(OWNER, NewTeam(externalId=team, name="Console"))
    spec = NewApiKey.model_validate({"name": "k", "teams": [{"teamExternalId": team, "permissions": permissions}]})
    return team, (await access.create_key(OWNER, spec)).key


async def test_login_sets_an_httponly_strict_cookie_that_does_not_reveal_the_key(console):
    form = await console.get("/console/login")
    token = CSRF.search(await form.text()).group(1)
    answer = await console.post("/console/login", data={"api_key": ADMIN_KEY, "csrf": token}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/console/"
    cookie = next(c for c in answer.headers.getall("Set-Cookie") if c.startswith("icp_console="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert ADMIN_KEY not in cookie and ADMIN_KEY.split("-")[-1] not in cookie
    page = await console.get("/console/")
    assert page.status == 200 and "Integrations" in await page.text()


async def test_a_wrong_key_or_a_forged_login_form_gets_no_session(console):
    form = await console.get("/console/login")
    token = CSRF.search(await form.text()).group(1)
    wrong = await console.post("/console/login", data={"api_key": "not-a-key", "csrf": token}, allow_redirects=False)
    assert wrong.status == 401 and "icp_console" not in wrong.cookies
    forged = await console.post("/console/login", data={"api_key": ADMIN_KEY, "csrf": "guess"}, allow_redirects=False)
    assert forged.status == 403 and "icp_console" not in forged.cookies


async def test_pages_without_a_session_redirect_to_the_login(console):
    answer = await console.get("/console/", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/console/login"
    console.session.cookie_jar.update_cookies({"icp_console": "tampered"})
    answer = await console.get("/console/", allow_redirects=False)
    assert answer.status == 303
    assert (await console.post("/console/integrations/x/run", data={})).status == 401


async def test_a_post_without_the_sessions_csrf_token_is_refused(console, make_integration, runtime):
    integration = await make_integration()
    await log_in(console, ADMIN_KEY)
    for data in ({}, {"csrf": "forged"}):
        answer = await console.post(f"/console/integrations/{integration.external_id}/run", data=data)
        assert answer.status == 403
    runs, _ = await ingestion.list_runs(runtime, OWNER, integration.external_id, None, 10)
    assert runs == []


async def test_run_starts_a_run_and_shows_its_page_and_cancel_cancels_it(console, make_integration, runtime):
    integration = await make_integration()
    csrf = await log_in(console, ADMIN_KEY)
    answer = await console.post(f"/console/integrations/{integration.external_id}/run", data={"csrf": csrf},
                                allow_redirects=False)  # fmt: skip
    assert answer.status == 303
    run = await ingestion.latest_run(runtime, OWNER, integration.external_id)
    assert answer.headers["Location"] == f"/console/integrations/{integration.external_id}/runs/{run.run_id}"
    page = await (await console.get(answer.headers["Location"])).text()
    assert "QUEUED" in page and 'sse-connect="' in page and ">Cancel</button>" in page
    again = await console.post(f"/console/integrations/{integration.external_id}/run", data={"csrf": csrf})
    assert again.status == 409 and "already in progress" in await again.text()
    assert f'name="runId" value="{run.run_id}"' in page  # its Cancel is for this run only
    await console.post(f"/console/integrations/{integration.external_id}/cancel", data={"csrf": csrf})
    assert (await ingestion.get_run(runtime, OWNER, integration.external_id, run.run_id)).cancel_requested


async def test_cancel_from_a_runs_page_leaves_the_next_run_alone(console, make_integration, runtime):
    # A page left open on a run that ended must not cancel the run that started after it.
    integration = await make_integration()
    csrf = await log_in(console, ADMIN_KEY)
    shown = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    await ingestion.cancel_run(runtime, OWNER, integration.external_id)  # queued: it ends at once
    following = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    cancel = f"/console/integrations/{integration.external_id}/cancel"
    await console.post(cancel, data={"csrf": csrf, "runId": str(shown.run_id)})
    assert not (await ingestion.get_run(runtime, OWNER, integration.external_id, following.run_id)).cancel_requested
    await console.post(cancel, data={"csrf": csrf, "runId": str(following.run_id)})
    assert (await ingestion.get_run(runtime, OWNER, integration.external_id, following.run_id)).cancel_requested


async def test_a_team_key_sees_only_its_teams_integrations(console, make_integration, runtime):
    team, key = await team_key(runtime, ["INGESTION_VIEW", "INGESTION_EDIT"])
    ours = await make_integration(owningTeamExternalId=team)
    other_team, _ = await team_key(runtime, ["INGESTION_VIEW"])
    theirs = await make_integration(owningTeamExternalId=other_team)
    unowned = await make_integration()
    csrf = await log_in(console, key)
    listing = await (await console.get("/console/")).text()
    assert ours.external_id in listing and ">Run</button>" in listing
    assert theirs.external_id not in listing and unowned.external_id not in listing
    for hidden in (theirs, unowned):
        assert (await console.get(f"/console/integrations/{hidden.external_id}/runs")).status == 404
        assert (await console.get(f"/console/integrations/{hidden.external_id}/fires")).status == 404
        answer = await console.post(f"/console/integrations/{hidden.external_id}/run", data={"csrf": csrf})
        assert answer.status == 404
    assert await ingestion.list_runs(runtime, OWNER, theirs.external_id, None, 1) == ([], False)


async def test_a_view_only_key_gets_no_buttons_and_a_403_if_it_posts_anyway(console, make_integration, runtime):
    team, key = await team_key(runtime, ["INGESTION_VIEW"])
    integration = await make_integration(owningTeamExternalId=team)
    csrf = await log_in(console, key)
    listing = await (await console.get("/console/")).text()
    assert integration.external_id in listing
    assert ">Run</button>" not in listing and ">Cancel</button>" not in listing
    for action in ("run", "cancel"):
        answer = await console.post(f"/console/integrations/{integration.external_id}/{action}", data={"csrf": csrf})
        assert answer.status == 403
    assert await ingestion.list_runs(runtime, OWNER, integration.external_id, None, 1) == ([], False)


async def test_a_revoked_key_ends_its_session_on_the_next_request(console, runtime):
    _, key = await team_key(runtime, ["INGESTION_VIEW"])
    await log_in(console, key)
    access = AccessService(runtime)
    await access.revoke_key(OWNER, (await access.authenticate(key)).key_id)
    answer = await console.get("/console/", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == "/console/login"


async def test_logout_ends_the_session(console):
    csrf = await log_in(console, ADMIN_KEY)
    assert (await console.post("/console/logout", data={})).status == 403  # logout is a form too
    await console.post("/console/logout", data={"csrf": csrf})
    answer = await console.get("/console/", allow_redirects=False)
    assert answer.status == 303


async def test_what_users_typed_is_escaped(console, make_integration):
    integration = await make_integration(name="<script>alert('x')</script>")
    await log_in(console, ADMIN_KEY)
    page = await (await console.get("/console/")).text()
    assert integration.external_id in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


async def test_history_filters_by_status_and_pages_by_keyset(console, make_integration, runtime):
    integration = await make_integration()
    runs = []
    for _ in range(3):  # three cancelled runs (each cancelled before the next may start)
        run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
        await ingestion.cancel_run(runtime, OWNER, integration.external_id)
        runs.append(run)
    await log_in(console, ADMIN_KEY)
    base = f"/console/integrations/{integration.external_id}/runs"
    from services.console import pages

    pages.PAGE_SIZE, saved = 2, pages.PAGE_SIZE
    try:
        first = await (await console.get(base)).text()
        shown = [str(r.run_id)[:8] for r in runs if str(r.run_id)[:8] in first]
        assert len(shown) == 2
        following = re.search(r'id="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
        second = await (await console.get(following)).text()
        assert [str(r.run_id)[:8] for r in runs if str(r.run_id)[:8] in second] == [
            str(r.run_id)[:8] for r in runs if str(r.run_id)[:8] not in shown
        ]
    finally:
        pages.PAGE_SIZE = saved
    none = await (await console.get(base + "?status=SUCCESS")).text()
    assert "No runs with status SUCCESS" in none
    assert (await console.get(base + "?status=BOGUS")).status == 400


async def test_the_run_page_stream_sends_the_run_as_it_changes_and_ends_when_it_is_over(console, make_integration,
                                                                                          runtime):  # fmt: skip
    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    await log_in(console, ADMIN_KEY)
    stream = await console.get(f"/console/integrations/{integration.external_id}/runs/{run.run_id}/live")
    assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    received = ""

    async def until(text: str) -> None:
        nonlocal received
        while text not in received:
            received += (await stream.content.readline()).decode()

    await asyncio.wait_for(until("QUEUED"), timeout=15)
    assert "CANCELLED" not in received
    await ingestion.cancel_run(runtime, OWNER, integration.external_id)
    await asyncio.wait_for(until("event: end"), timeout=15)
    assert "CANCELLED" in received.split("QUEUED", 1)[1]
    stream.close()


async def test_the_system_page_shows_readiness_queues_and_lag_to_organization_owners_only(console, runtime, pool):
    instance = f"console-test-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO process_status (service, instance, ready, checks, interval_s, started_at, seen_at) "
            "VALUES ('relay', $1, true, $2, 5, now(), now())", instance, {"database": "ok"},
        )  # fmt: skip
    try:
        await log_in(console, ADMIN_KEY)
        page = await console.get("/console/system")
        text = await page.text()
        assert page.status == 200 and instance in text and "Outbox depth" in text and "Consumer lag" in text
        assert 'id="ready">NOT READY' in text and "scheduler" in text  # no scheduler recorded itself here
        _, key = await team_key(runtime, ["INGESTION_VIEW", "INGESTION_EDIT"])
        await log_in(console, key)
        assert "/console/system" not in await (await console.get("/console/")).text()
        assert (await console.get("/console/system")).status == 403
    finally:
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM process_status WHERE instance = $1", instance)
