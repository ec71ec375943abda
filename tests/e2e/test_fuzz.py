"""Property-based fuzzing of the whole HTTP API against its OpenAPI documents (schemathesis).

Three documents, fuzzed the same way: ours (/openapi.yaml: Entropy's integrations and our own endpoints) and
the two Immuta dialects (/openapi/immuta-v2.yaml, /openapi/immuta-v1.yaml). Generated and deliberately invalid
requests, and sequences of them following the documents' links, must never get a 5xx, only documented status
codes, and responses matching their documented schemas and content types. The API runs as a process of its own
with its own database and NO connector: generated integrations name random hosts, and nothing may ever try to
reach them (nor resolve them: ALLOW_PRIVATE_SOURCES=true skips the SSRF guard's DNS lookup).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest

from services.core.objects import key_of, object_id
from services.core.runs import RunState, RunStatus
from services.core.store import runlog
from services.core.store.access import hash_key
from shared.events import (
    AssetCountsPayload,
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    RunOwner,
    RunStarted,
    RunSucceeded,
    StartedPayload,
)
from shared.postgres import migrate
from tests.conftest import MIGRATIONS
from tests.e2e.conftest import ROOT, Stack, free_port, wait_for_api
from tests.support import recreate_database

pytestmark = pytest.mark.e2e

ST = Path(sys.executable).with_name("st")  # schemathesis' CLI, a dev dependency
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
# Bounded for a 2-core machine shared with other runs: about three minutes for the three documents. FUZZ_EXAMPLES /
# FUZZ_SEED widen or vary a run by hand (e.g. FUZZ_EXAMPLES=300 FUZZ_SEED=7); CI keeps the fixed seed, so a
# failure reproduces.
EXAMPLES = os.environ.get("FUZZ_EXAMPLES")
SEED = os.environ.get("FUZZ_SEED", "20261122")
DEADLINE_SECONDS = 300


@dataclass(frozen=True)
class Document:
    path: str
    auth: str  # the header every request sends, with {key} for the API key
    operations: int  # how many operations are fuzzed: all but the excluded ones
    examples: int
    excluded: tuple[str, ...] = ()


DOCUMENTS = {
    # Connection tests need a connector, which this stack must not have (nothing may dial generated hosts):
    # here they can only be a 503. tests/e2e/test_connection_tests.py drives them against real connectors.
    # The live streams do not end while a run is active or at all (/api/events/stream): a request would only time
    # out. tests/e2e/test_run_timeline.py drives them.
    "entropy": Document("/openapi.yaml", "x-api-key: {key}", 27, 40,
                        ("testConnection", "testIntegrationConnection", "streamIntegrationRunEvents",
                         "streamRunEvents")),
    # _validate is fuzzed: no connector answers its connection test here, so it reports a FAILED client
    # validation once CONNECTION_TEST_TIMEOUT_SECONDS (short, below) have passed; nothing dials a generated host.
    "immuta-v2": Document("/openapi/immuta-v2.yaml", "Authorization: Bearer {key}", 19, 50),
    "immuta-v1": Document("/openapi/immuta-v1.yaml", "Authorization: Bearer {key}", 8, 80),
    "secoda": Document("/openapi/secoda.yaml", "Authorization: Bearer {key}", 13, 40),
}  # fmt: skip


@pytest.fixture(scope="module")
async def fuzz_api(infrastructure: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    dsn = await recreate_database(infrastructure[0], "ingestion_fuzz")
    await migrate(dsn, MIGRATIONS)
    port = free_port()
    env = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": dsn,
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "BOOTSTRAP_API_KEY": "fuzz-owner-" + uuid.uuid4().hex,
        "ALLOW_PRIVATE_SOURCES": "true",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # nor look up generated webhook hosts
        "LOG_FORMAT": "json",
        # How long a connection test waits for a connector (twice this): none ever answers here.
        "CONNECTION_TEST_TIMEOUT_SECONDS": "0.2",
    }
    stack = Stack(url=f"http://127.0.0.1:{port}", dsn=dsn, env=env, log_dir=tmp_path_factory.mktemp("fuzz-logs"))
    stack.start("api")  # the API only: no connector, no relay (see the module docstring)
    await wait_for_api(stack)
    yield stack
    stack.stop("api")


@pytest.mark.parametrize("name", list(DOCUMENTS))
async def test_generated_requests_get_documented_answers_and_never_a_server_error(
    fuzz_api: Stack, tmp_path: Path, name: str
) -> None:
    document = DOCUMENTS[name]
    key = fuzz_api.env["BOOTSTRAP_API_KEY"]
    seeds = await owner_key_seeds(fuzz_api) if name == "entropy" else await immuta_seeds(fuzz_api, name)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "NO_COLOR": "1",
           "NO_PROXY": "*", "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks", "FUZZ_SEEDS": json.dumps(seeds)}  # fmt: skip
    excluded = [arg for operation in document.excluded for arg in ("--exclude-operation-id", operation)]
    log_before = len(fuzz_api.log("api"))
    process = await asyncio.create_subprocess_exec(
        str(ST), "run", fuzz_api.url + document.path, "--url", fuzz_api.url,
        "--header", document.auth.format(key=key), "--checks", CHECKS,
        "--max-examples", EXAMPLES or str(document.examples), "--seed", SEED, "--workers", "1",
        "--request-timeout", "30", "--suppress-health-check", "too_slow", *excluded,
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=DEADLINE_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    report = output.decode(errors="replace")
    api_log = fuzz_api.log("api")[log_before:]
    assert process.returncode == 0, report[-25_000:] + "\n--- api log ---\n" + api_log[-5_000:]
    assert "passed" in report and f"Tested: {document.operations}" in report, report[-5_000:]
    # The API logs every 5xx it answers (request_answered) and every bug (request_failed): none at all.
    assert "request_answered" not in api_log and "request_failed" not in api_log, api_log[-5_000:]


async def owner_key_seeds(stack: Stack) -> dict[str, Any]:
    """The fuzzer authenticates with the bootstrap key: revoking it would turn the rest of the run into 403s."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        key_id = await conn.fetchval(
            "SELECT id FROM api_keys WHERE key_hash = $1", hash_key(stack.env["BOOTSTRAP_API_KEY"])
        )
    finally:
        await conn.close()
    return {"protected": {"keyId": [str(key_id)]}}


# The source of a seeded connection, as its first sync found it: the database, a schema that stays and one that
# the fuzzer may delete, and table-level objects (one with a space and a '/' in its name, to be percent-encoded).
SOURCE_DATABASE = "shop"
STAYING = {"public": [("orders", "table"), ("order totals/eu", "view")]}
DISPOSABLE = {"scratch": [("tmp_a", "table"), ("tmp_b", "materialized_view")]}


async def immuta_seeds(stack: Stack, name: str) -> dict[str, Any]:
    """Three connections and what fuzz_hooks.py needs to know of them.

    Generated requests get the first one's key, object ids and paths, task and run, or the key of the third, an
    integration registered through /api/integrations (its externalId holds a '.', which no connectionKey may).
    A request that starts a sync (creating a task, a v1 crawl or PUT) leaves a sync PENDING for the rest of the
    run (no connector here), and then every delete of an object there is a 409: so a DELETE gets the second
    connection, which nothing else touches, and only its disposable objects (deleting a connection itself would
    leave the rest of the run nothing but 404s).
    """
    key, deletes_key, entropy_key = f"fuzz-{name}", f"fuzz-{name}-deletes", f"fuzz.{name}.entropy"
    staying, disposable = object_paths(STAYING, root=True), object_paths(DISPOSABLE, root=False)
    first = await seed_connection(stack, key)
    second = await seed_connection(stack, deletes_key)
    await register_integration(stack, entropy_key)
    return {
        "seeds": [
            {"connectionKey": [key], "objectPath": [encoded_path(key, path) for path in staying],
             "id": [str(object_id(first.integration_id, key_of(path))) for path in staying],
             "taskId": [str(first.task_id)], "runId": [str(first.run_id)]},
            {"connectionKey": [entropy_key], "objectPath": [encoded_path(entropy_key, [])]},
        ],
        "disposable": [
            {"connectionKey": [deletes_key], "objectPath": [encoded_path(deletes_key, path) for path in disposable],
             "id": [str(object_id(second.integration_id, key_of(path))) for path in disposable]},
        ],
        "protected": {
            "connectionKey": [key, deletes_key, entropy_key],
            "objectPath": [encoded_path(k, path) for k in (key, deletes_key) for path in staying]
            + [encoded_path(entropy_key, [])],
            "id": [str(object_id(c.integration_id, key_of(path))) for c in (first, second) for path in staying],
        },
    }  # fmt: skip


async def register_integration(stack: Stack, external_id: str) -> None:
    """A PostgreSQL integration registered through our own API (no sync starts): also a connection."""
    body = {"externalId": external_id, "name": f"Registered as {external_id}", "source": "postgres",
            "configuration": {"host": "fuzz-source.invalid", "port": 5432, "database": SOURCE_DATABASE,
                              "username": "reader"}, "credentials": {"password": "fuzz-secret"}}  # fmt: skip
    async with aiohttp.ClientSession(stack.url, headers={"x-api-key": stack.env["BOOTSTRAP_API_KEY"]}) as http:
        async with http.post("/api/integrations", json=body) as response:
            assert response.status == 201, await response.text()


async def seed_connection(stack: Stack, connection_key: str) -> RunState:
    """Register a connection through the v2 API and finish its first sync as a connector would report it.

    Returns the state of that sync, SUCCESS; afterwards no sync is active, so a new one can start.
    """
    headers = {"Authorization": f"Bearer {stack.env['BOOTSTRAP_API_KEY']}"}
    body = {"connectionKey": connection_key,
            "connection": {"technology": "PostgreSQL", "hostname": "fuzz-source.invalid", "port": 5432,
                           "database": SOURCE_DATABASE, "username": "reader", "password": "fuzz-secret"}}  # fmt: skip
    async with aiohttp.ClientSession(stack.url, headers=headers) as http:
        async with http.post("/api/connections", json=body) as response:
            assert response.status == 201, await response.text()
        async with http.get(f"/api/connections/{connection_key}/tasks") as response:
            task_id = (await response.json())["tasks"][0]["taskId"]
        async with http.get(f"/api/connections/{connection_key}/tasks/{task_id}/runs") as response:
            run_id = uuid.UUID((await response.json())["runs"][0]["runId"])
    conn = await asyncpg.connect(stack.dsn)
    try:
        state = await runlog.load_state(conn, run_id)
        assert state is not None
        about: dict[str, Any] = {"integration_id": state.integration_id, "integration_external_id": connection_key,
                 "run_id": run_id, "owner": RunOwner(connector_id="fuzz-connector", attempt=1)}  # fmt: skip
        assets = source_assets()
        done = FinishedPayload(counts=AssetCountsPayload(assets_processed=len(assets), assets_created=len(assets)))
        async with conn.transaction():
            result = await runlog.append(conn, run_id, [
                RunStarted(**about, payload=StartedPayload(connector_id="fuzz-connector")),
                AssetsChanged(**about, payload=AssetsChangedPayload.model_validate({"upserted": assets})),
                RunSucceeded(**about, payload=done),
            ])  # fmt: skip
    finally:
        await conn.close()
    assert result.state is not None and result.state.status is RunStatus.SUCCESS
    return result.state


def object_paths(schemas: dict[str, list[tuple[str, str]]], *, root: bool) -> list[list[str]]:
    """The names below the connection of these schemas and their table-level objects; with `root`, of the
    connection itself and the database too."""
    paths: list[list[str]] = [[], [SOURCE_DATABASE]] if root else []
    for schema, relations in schemas.items():
        paths.append([SOURCE_DATABASE, schema])
        paths.extend([SOURCE_DATABASE, schema, name] for name, _ in relations)
    return paths


def encoded_path(connection_key: str, names: list[str]) -> str:
    """A v1 object path as it goes into a URL: one percent-encoded segment per name."""
    return "/".join(quote(segment, safe="") for segment in [connection_key, *names])


def source_assets() -> list[dict[str, Any]]:
    """The assets a PostgreSQL crawl reports for the seeded source (asset keys: escaped names joined by '/')."""
    database = key_of([SOURCE_DATABASE])
    assets = [{"key": database, "kind": "database", "name": SOURCE_DATABASE, "parent_key": None}]
    for schema, relations in (STAYING | DISPOSABLE).items():
        schema_key = key_of([SOURCE_DATABASE, schema])
        assets.append({"key": schema_key, "kind": "schema", "name": schema, "parent_key": database})
        for name, kind in relations:
            relation_key = key_of([SOURCE_DATABASE, schema, name])
            assets.append({"key": relation_key, "kind": kind, "name": name, "parent_key": schema_key})
            assets.append({"key": relation_key + "/id", "kind": "column", "name": "id", "parent_key": relation_key})
    return [asset | {"fingerprint": asset["key"], "attributes": {}} for asset in assets]
