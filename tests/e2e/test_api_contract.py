"""The HTTP contract: bad input, authentication and team scoping, paging, credentials, schedules."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import postgres_integration
from tests.support import eventually

pytestmark = pytest.mark.e2e


async def count_integrations(db) -> int:
    return await db.fetchval("SELECT count(*) FROM integrations")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"source": "oracle"}, 422, "source"),
        ({"externalId": "has space"}, 422, "externalId"),
        ({"externalId": ""}, 422, "externalId"),
        ({"source": "databricks"}, 422, "source"),  # a name of the enum without a connector
        ({"configuration": {"host": "db", "database": "x"}}, 422, "configuration.username"),
        ({"configuration": {"host": "db", "port": 70000, "database": "x", "username": "u"}}, 422, "configuration.port"),
        ({"credentials": None}, 422, "credentials"),
        ({"schedule": {"cron": "sometimes"}}, 422, "schedule.cron"),
        ({"schedule": {"cron": "0 3 * * *", "timezone": "America"}}, 422, "schedule.timezone"),  # a directory
        ({"schedule": {"cron": "0 3 * * *", "timezone": "Europe" * 50}}, 422, "schedule.timezone"),  # too long a file
        ({"unknownField": 1}, 422, "unknownField"),
    ],
)
async def test_invalid_integrations_are_refused_naming_the_field_and_nothing_is_written(
    client, db, shop_dsn, body, status, field
):
    before = await count_integrations(db)
    payload = postgres_integration(shop_dsn, f"bad-{uuid.uuid4().hex[:8]}") | body
    if payload.get("credentials") is None:
        payload.pop("credentials")
    got, problem, headers = await client.call("POST", "/api/integrations", json=payload)
    assert got == status, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert field in problem["detail"] or any(field == e["field"] for e in problem.get("errors", []))
    assert await count_integrations(db) == before


async def test_malformed_json_is_a_400_and_nothing_is_written(client, db):
    before = await count_integrations(db)
    status, problem, _ = await client.call("POST", "/api/integrations", data=b'{"externalId": ')
    assert status == 400 and "not valid JSON" in problem["detail"]
    assert await count_integrations(db) == before


async def test_duplicate_external_id_is_a_409(client, shop_dsn):
    body = postgres_integration(shop_dsn, "twice-e2e")
    assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
    status, problem, _ = await client.call("POST", "/api/integrations", json=body)
    assert status == 409 and "twice-e2e" in problem["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/integrations/limits-e2e/runs?limit=0", 400),
        ("/api/integrations/limits-e2e/runs?limit=201", 400),
        ("/api/integrations/limits-e2e/runs?limit=abc", 400),
        ("/api/integrations/limits-e2e/runs?status=DONE", 400),
        ("/api/integrations/limits-e2e/runs/" + str(uuid.uuid4()), 404),
        ("/api/integrations/limits-e2e/runs/not-a-uuid", 400),
        ("/api/integrations/limits-e2e/runs/latest", 404),
        ("/api/integrations/no-such-integration", 404),
        ("/api/integrations?enabled=maybe", 400),
        ("/api/integrations?source=oracle", 400),
        ("/api/integrations?p=-1", 400),
    ],
)
async def test_bad_queries_get_a_clear_problem(client, shop_dsn, path, status):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "limits-e2e"))
    got, problem, headers = await client.call("GET", path)
    assert got == status, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == status and problem["detail"]


async def test_limit_bounds_are_inclusive(client, shop_dsn):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "limits-e2e"))
    for limit in (1, 200):
        status, runs, _ = await client.call("GET", f"/api/integrations/limits-e2e/runs?limit={limit}")
        assert status == 200 and runs == []


async def test_a_run_of_another_integration_is_not_found(client, shop_dsn, stack):
    from tests.support import create_shop_database

    source = await create_shop_database(stack.dsn, "source_other_e2e")
    await client.call("POST", "/api/integrations", json=postgres_integration(source, "owner-a-e2e"))
    await client.call("POST", "/api/integrations", json=postgres_integration(source, "owner-b-e2e"))
    status, accepted, _ = await client.call("POST", "/api/integrations/owner-a-e2e/run")
    assert status == 202
    status, _, _ = await client.call("GET", f"/api/integrations/owner-b-e2e/runs/{accepted['ingestionRunId']}")
    assert status == 404


async def test_missing_or_wrong_key_is_403_problem(client, stack):
    for headers in ({}, {"x-api-key": "wrong-key"}, {"Authorization": "Bearer wrong-key"}):
        async with client._session.get(stack.url + "/api/integrations", headers=headers) as response:
            problem = await response.json(content_type=None)
            assert response.status == 403 and response.content_type == "application/problem+json"
            assert problem["title"] == "Forbidden" and problem["detail"]


async def test_bearer_authentication_works_like_x_api_key(client, stack):
    async with client._session.get(stack.url + "/api/integrations",
                                   headers={"Authorization": f"Bearer {client.key}"}) as response:  # fmt: skip
        assert response.status == 200


async def test_team_keys_see_and_edit_only_their_teams_integrations(client, shop_dsn):
    for team in ("alpha", "beta"):
        status, _, _ = await client.call("POST", "/api/teams", json={"externalId": team, "name": team.title()})
        assert status in (201, 409)
    await client.call("POST", "/api/integrations",
                      json=postgres_integration(shop_dsn, "alpha-e2e", owningTeamExternalId="alpha"))  # fmt: skip
    await client.call("POST", "/api/integrations",
                      json=postgres_integration(shop_dsn, "beta-e2e", owningTeamExternalId="beta"))  # fmt: skip
    status, viewer, _ = await client.call(
        "POST",
        "/api/api-keys",
        json={"name": "alpha viewer", "teams": [{"teamExternalId": "alpha", "permissions": ["INGESTION_VIEW"]}]},
    )
    assert status == 201 and viewer["key"].startswith("icp_")
    status, editor, _ = await client.call(
        "POST",
        "/api/api-keys",
        json={
            "name": "alpha editor",
            "teams": [{"teamExternalId": "alpha", "permissions": ["INGESTION_VIEW", "INGESTION_EDIT"]}],
        },
    )

    status, listed, _ = await client.call("GET", "/api/integrations?owningTeamExternalId=alpha", key=viewer["key"])
    assert [i["externalId"] for i in listed] == ["alpha-e2e"]
    status, listed, _ = await client.call("GET", "/api/integrations", key=viewer["key"])
    assert "beta-e2e" not in {i["externalId"] for i in listed}
    assert (await client.call("GET", "/api/integrations/beta-e2e", key=viewer["key"]))[0] == 404
    assert (await client.call("POST", "/api/integrations/beta-e2e/run", key=editor["key"]))[0] == 404
    status, problem, _ = await client.call("POST", "/api/integrations/alpha-e2e/run", key=viewer["key"])
    assert status == 403 and "INGESTION_EDIT" in problem["detail"]
    assert (await client.call("POST", "/api/integrations/alpha-e2e/cancel", key=viewer["key"]))[0] == 403
    status, _, _ = await client.call("POST", "/api/integrations/alpha-e2e/run", key=editor["key"])
    assert status == 202
    status, teams, _ = await client.call("GET", "/api/teams", key=viewer["key"])
    assert [t["externalId"] for t in teams] == ["alpha"] and teams[0]["createdAt"].endswith("Z")
    assert (await client.call("GET", "/api/api-keys", key=viewer["key"]))[0] == 403
    status, keys, _ = await client.call("GET", "/api/api-keys")
    listed = next(k for k in keys if k["id"] == viewer["id"])
    assert listed["teams"] == [{"teamExternalId": "alpha", "permissions": ["INGESTION_VIEW"]}]
    assert "key" not in listed and listed["revokedAt"] is None
    assert (await client.call("DELETE", f"/api/api-keys/{viewer['id']}"))[0] == 204
    assert (await client.call("GET", "/api/integrations", key=viewer["key"]))[0] == 403
    await client.wait_for_run("alpha-e2e", {"SUCCESS", "FAILED"})


async def test_an_api_key_granting_one_team_twice_is_refused_naming_teams(client):
    assert (await client.call("POST", "/api/teams", json={"externalId": "twice", "name": "Twice"}))[0] in (201, 409)
    grants = [{"teamExternalId": "twice", "permissions": ["INGESTION_VIEW"]},
              {"teamExternalId": "twice", "permissions": ["INGESTION_EDIT"]}]  # fmt: skip
    status, problem, headers = await client.call("POST", "/api/api-keys", json={"name": "twice", "teams": grants})
    assert status == 422 and headers["Content-Type"].startswith("application/problem+json"), problem
    assert [e["field"] for e in problem["errors"]] == ["teams"] and "twice" in problem["detail"]


async def test_integrations_without_an_owning_team_are_for_organization_owners_only(client, shop_dsn):
    assert (await client.call("POST", "/api/teams", json={"externalId": "gamma", "name": "Gamma"}))[0] in (201, 409)
    status, _, _ = await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "unowned-e2e"))
    assert status == 201
    grants = [{"teamExternalId": "gamma", "permissions": ["INGESTION_VIEW", "INGESTION_EDIT"]}]
    status, team_key, _ = await client.call("POST", "/api/api-keys", json={"name": "gamma editor", "teams": grants})
    assert status == 201
    key = team_key["key"]

    for method, path in [("GET", ""), ("GET", "/runs"), ("GET", "/runs/latest"), ("POST", "/run"),
                         ("POST", "/cancel"), ("PATCH", ""), ("DELETE", "")]:  # fmt: skip
        status, problem, _ = await client.call(method, f"/api/integrations/unowned-e2e{path}", json={}, key=key)
        assert status == 404, (method, path, problem)
    status, listed, _ = await client.call("GET", "/api/integrations", key=key)
    assert status == 200 and "unowned-e2e" not in {i["externalId"] for i in listed}

    status, listed, _ = await client.call("GET", "/api/integrations")
    assert "unowned-e2e" in {i["externalId"] for i in listed}
    assert (await client.call("GET", "/api/integrations/unowned-e2e"))[0] == 200
    assert (await client.call("POST", "/api/integrations/unowned-e2e/run"))[0] == 202
    status, runs, _ = await client.call("GET", "/api/integrations/unowned-e2e/runs")
    assert status == 200 and len(runs) == 1
    await client.wait_for_run("unowned-e2e", {"SUCCESS", "FAILED"})


async def test_integration_list_returns_all_without_p_and_pages_with_it(client, shop_dsn):
    status, _, _ = await client.call("POST", "/api/teams", json={"externalId": "paging", "name": "Paging"})
    for i in range(52):
        body = postgres_integration(shop_dsn, f"page-{i:03d}", owningTeamExternalId="paging", enabled=i % 2 == 0)
        assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
    names = [f"page-{i:03d}" for i in range(52)]

    # The Entropy specification has no paging here: every visible integration, in one (streamed) answer.
    status, everything, headers = await client.call("GET", "/api/integrations?owningTeamExternalId=paging")
    assert status == 200 and [i["externalId"] for i in everything] == names and "Link" not in headers
    assert headers["Content-Type"].startswith("application/json")
    assert all("configuration" not in i and "latestRun" in i for i in everything)
    status, disabled, _ = await client.call("GET", "/api/integrations?owningTeamExternalId=paging&enabled=false")
    assert [i["externalId"] for i in disabled] == names[1::2]

    # `p` opts into pages of 50 with a Link header (our extension).
    status, first, headers = await client.call("GET", "/api/integrations?owningTeamExternalId=paging&p=0")
    assert status == 200 and [i["externalId"] for i in first] == names[:50]
    assert 'rel="next"' in headers["Link"] and "p=1" in headers["Link"] and "owningTeamExternalId" in headers["Link"]
    status, second, headers = await client.call("GET", "/api/integrations?owningTeamExternalId=paging&p=1")
    assert [i["externalId"] for i in second] == ["page-050", "page-051"]
    assert "Link" not in headers
    status, page, _ = await client.call("GET", "/api/integrations?owningTeamExternalId=paging&enabled=true&p=0")
    assert [i["externalId"] for i in page] == names[0::2]
    for paging in ("", "&p=0"):
        status, filtered, _ = await client.call(
            "GET", f"/api/integrations?owningTeamExternalId=paging&source=mysql{paging}"
        )
        assert status == 200 and filtered == []


async def test_credentials_are_never_returned_nor_stored_in_clear(client, shop_dsn, db):
    body = postgres_integration(shop_dsn, "secret-e2e")
    password = body["credentials"]["password"]
    status, created, _ = await client.call("POST", "/api/integrations", json=body)
    assert status == 201 and "credentials" not in created and password not in str(created)
    status, fetched, _ = await client.call("GET", "/api/integrations/secret-e2e")
    assert fetched["configuration"]["host"] and password not in str(fetched)
    stored = await db.fetchval("SELECT credentials_enc FROM integrations WHERE external_id = 'secret-e2e'")
    assert stored and password.encode() not in stored


async def test_update_and_delete_an_integration(client, shop_dsn):
    await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "edit-e2e"))
    status, updated, _ = await client.call("PATCH", "/api/integrations/edit-e2e",
                                           json={"name": "Renamed", "enabled": False})  # fmt: skip
    assert status == 200 and updated["name"] == "Renamed" and updated["enabled"] is False
    status, listed, _ = await client.call("GET", "/api/integrations?enabled=false")
    assert "edit-e2e" in {i["externalId"] for i in listed}
    assert (await client.call("DELETE", "/api/integrations/edit-e2e"))[0] == 204
    assert (await client.call("GET", "/api/integrations/edit-e2e"))[0] == 404


async def test_a_due_schedule_fires_once(client, shop_dsn, db):
    body = postgres_integration(shop_dsn, "sched-e2e", schedule={"intervalSeconds": 3600})
    assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
    await make_due(db, "sched-e2e")
    run = await client.wait_for_run("sched-e2e", {"SUCCESS", "FAILED"})
    assert run["status"] == "SUCCESS"
    assert await fire_outcomes(db, "sched-e2e") == ["fired"]
    assert await db.fetchval("SELECT next_fire_at > now() + interval '50 minutes' FROM integrations "
                             "WHERE external_id = 'sched-e2e'")  # fmt: skip


async def test_a_schedule_due_while_a_run_is_active_is_skipped_and_recorded(client, shop_dsn, db, locked_view):
    body = postgres_integration(shop_dsn, "sched-busy-e2e", schedule={"cron": "0 3 * * *"})
    assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
    assert (await client.call("POST", "/api/integrations/sched-busy-e2e/run"))[0] == 202
    await make_due(db, "sched-busy-e2e")

    async def skipped():
        return await fire_outcomes(db, "sched-busy-e2e") == ["skipped_active"]

    await eventually(skipped)
    status, runs, _ = await client.call("GET", "/api/integrations/sched-busy-e2e/runs")
    assert status == 200 and len(runs) == 1
    assert (await client.call("POST", "/api/integrations/sched-busy-e2e/cancel"))[0] == 204


async def make_due(db, external_id: str) -> None:
    async def initialised():
        return await db.fetchval("SELECT next_fire_at FROM integrations WHERE external_id = $1", external_id)

    await eventually(initialised)  # the scheduler computed the first fire time
    await db.execute("UPDATE integrations SET next_fire_at = now() - interval '1 second' WHERE external_id = $1",
                     external_id)  # fmt: skip


async def fire_outcomes(db, external_id: str) -> list[str]:
    rows = await db.fetch("SELECT outcome FROM schedule_fires f JOIN integrations i ON i.id = f.integration_id "
                          "WHERE i.external_id = $1 ORDER BY f.id", external_id)  # fmt: skip
    return [r["outcome"] for r in rows]
