"""Testing a connection through a connector, before saving it and for a saved integration, over HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.e2e.conftest import Client, Stack, postgres_integration

pytestmark = pytest.mark.e2e


def unsaved(dsn: str, **configuration: object) -> dict:
    body = postgres_integration(dsn, "unused")
    return {"source": "postgres", "configuration": body["configuration"] | configuration,
            "credentials": body["credentials"]}  # fmt: skip


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on loopback that accepts connections and never says a word (a hung source)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_configuration_is_tested_through_a_connector_and_nothing_is_saved(client: Client, shop_dsn, db):
    before = await db.fetchval("SELECT count(*) FROM integrations")
    status, result, _ = await client.call("POST", "/api/integrations/test", json=unsaved(shop_dsn))
    assert status == 200, result
    assert result["status"] == "PASSED" and result["message"] and result["durationMs"] >= 0
    assert await db.fetchval("SELECT count(*) FROM integrations") == before
    tested_by = await db.fetchval(
        "SELECT connector_id FROM connection_tests WHERE id = $1", uuid.UUID(result["testId"])
    )
    assert tested_by  # a connector answered, not the API


async def test_a_wrong_password_fails_the_test_without_echoing_it(client: Client, shop_dsn):
    body = unsaved(shop_dsn)
    wrong = f"wrong-{uuid.uuid4().hex}"
    body["credentials"] = {"password": wrong}
    status, result, _ = await client.call("POST", "/api/integrations/test", json=body)
    assert status == 200 and result["status"] == "FAILED", result
    assert "Cannot connect to PostgreSQL" in result["message"] and wrong not in result["message"]


async def test_a_source_that_never_answers_fails_within_the_timeout(client: Client, shop_dsn, silent_server):
    began = time.monotonic()
    status, result, _ = await client.call("POST", "/api/integrations/test", json=unsaved(shop_dsn, port=silent_server))
    elapsed = time.monotonic() - began
    assert status == 200 and result["status"] == "FAILED", result
    assert "did not answer within 2s" in result["message"] and elapsed < 8, (result, elapsed)


async def test_a_saved_integration_is_tested_with_its_stored_credentials(client: Client, shop_dsn):
    assert (await client.call("POST", "/api/integrations", json=postgres_integration(shop_dsn, "tested-e2e")))[0] == 201
    status, result, _ = await client.call("POST", "/api/integrations/tested-e2e/test")
    assert status == 200 and result["status"] == "PASSED", result
    assert (await client.call("POST", "/api/integrations/no-such-integration/test"))[0] == 404


async def test_an_invalid_configuration_is_refused_before_any_connector_is_asked(client: Client, shop_dsn, db):
    before = await db.fetchval("SELECT count(*) FROM connection_tests")
    status, problem, _ = await client.call("POST", "/api/integrations/test", json=unsaved(shop_dsn, port=70000))
    assert status == 422 and "configuration.port" in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM connection_tests") == before


async def test_without_a_connector_the_test_is_a_503_that_says_so(client: Client, stack: Stack, shop_dsn):
    stack.stop("connector")
    try:
        status, problem, headers = await client.call("POST", "/api/integrations/test", json=unsaved(shop_dsn))
        assert status == 503 and headers["Content-Type"].startswith("application/problem+json")
        assert "No connector answered" in problem["detail"]
    finally:
        stack.start("connector")
