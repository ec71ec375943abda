"""Every crawled platform beyond PostgreSQL as an Immuta connection and a Secoda integration, over HTTP (issue 10).

Parametrized over the platforms registered in SPECS (the API process has the same registry): a platform whose spec
is not registered yet is skipped. The targets are dead ports: writes never contact a source (A32), and a failed first
sync only makes the connection UNHEALTHY, which every write here allows.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.core.model import Source
from services.core.sources import SPECS
from tests.e2e.conftest import ADMIN_KEY, Stack, free_port
from tests.e2e.immuta_support import REDACTED, ImmutaClient, assert_problem, unique_key

pytestmark = pytest.mark.e2e

SECODA = "/api/v1/integration/integrations"
# The names: Immuta `technology` / Secoda `type` (our value where a dialect has no name).
NAMES = {"mysql": ("MySQL", "mysql"), "mariadb": ("MariaDB", "mariadb"), "snowflake": ("Snowflake", "snowflake"),
         "trino": ("Trino", "trino"), "bigquery": ("BigQuery", "bigquery"), "glue": ("Glue", "glue"),
         "kafka": ("kafka", "kafka")}  # fmt: skip


SERVICE_ACCOUNT = json.dumps(
    {
        "type": "service_account",
        "client_email": "reader@shop-project.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n",
    }
)


def sample(platform: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Immuta `connection` object without technology, a change of an identity field) of a dead target."""
    port = free_port()
    samples: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "mysql": ({"hostname": "127.0.0.1", "port": port, "database": "shop", "username": "reader",
                   "password": "pw-mysql"}, {"hostname": "localhost"}),
        "mariadb": ({"hostname": "127.0.0.1", "port": port, "username": "reader", "password": "pw-maria"},
                    {"port": free_port()}),
        "snowflake": ({"account": "xy12345", "username": "reader", "warehouse": "wh", "hostname": "127.0.0.1",
                       "port": port, "protocol": "http", "password": "pw-snow"}, {"account": "zz99999"}),
        "trino": ({"hostname": "127.0.0.1", "port": port, "https": True, "username": "reader",
                   "password": "pw-trino"}, {"username": "someone_else"}),  # a password goes over HTTPS only
        "bigquery": ({"projectId": "shop-project", "endpoint": f"http://127.0.0.1:{port}",
                      "serviceAccountJson": SERVICE_ACCOUNT}, {"projectId": "other-project"}),
        "glue": ({"region": "us-east-1", "endpointUrl": f"http://127.0.0.1:{port}",
                  "accessKeyId": "AKIAEXAMPLEKEY123456", "secretAccessKey": "pw-glue"}, {"region": "eu-west-1"}),
        "kafka": ({"bootstrapServers": f"127.0.0.1:{port}", "securityProtocol": "SASL_PLAINTEXT",
                   "saslMechanism": "PLAIN", "username": "reader", "password": "pw-kafka"},
                  {"bootstrapServers": f"127.0.0.1:{free_port()}"}),
    }  # fmt: skip
    return samples[platform]


PLATFORMS = [pytest.param(name, marks=pytest.mark.skipif(Source(name) not in SPECS or not SPECS[Source(name)].crawled,
                                                         reason=f"no {name} spec registered in SPECS yet"))
             for name in NAMES]  # fmt: skip


def secret_of(platform: str) -> str:
    return sorted(SPECS[Source(platform)].secret_fields)[0]


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[ImmutaClient]:
    async with aiohttp.ClientSession() as session:
        yield ImmutaClient(session, stack.url, ADMIN_KEY)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_connection_registered_through_immuta_is_the_same_integration_everywhere(
    api: ImmutaClient, platform: str
) -> None:
    technology, secoda_type = NAMES[platform]
    sent, _ = sample(platform)
    secret = secret_of(platform)
    key = unique_key(f"plat{platform}")
    created = await api.register(key, {"technology": technology} | sent)
    shown = created["connection"]
    assert shown["technology"] == technology and shown[secret] == REDACTED, created
    assert {name: shown[name] for name in sent if name != secret} == {n: v for n, v in sent.items() if n != secret}
    assert isinstance(shown["authenticationType"], str) and sent[secret] not in str(created), created
    assert (await api.call("GET", f"/api/connections/{key}")).body["connection"] == shown

    v1 = await api.call("GET", f"/data/connection/{key}")
    assert v1.status == 200 and v1.body["connection"]["technology"] == technology, v1
    assert secret not in v1.body["connection"] and REDACTED not in str(v1.body), v1
    roots = await api.call("POST", "/data/object/search", params={"searchText": key})
    assert [(hit["objectPath"], hit["technology"]) for hit in roots.body["hits"]] == [([key], technology)], roots

    entropy = await api.call("GET", f"/api/integrations/{key}", auth="x-api-key")
    assert entropy.status == 200 and entropy.body["source"] == platform, entropy
    secoda = await api.call("GET", SECODA, params={"type": secoda_type, "page": 1})
    pages, found = secoda.body["total_pages"], []
    for page in range(1, pages + 1):
        listed = await api.call("GET", SECODA, params={"type": secoda_type, "page": page})
        found += [i for i in listed.body["results"] if i["name"] == key]
    assert [(i["type"], i["credentials"]) for i in found] == [(secoda_type, {})], found


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_changing_where_a_platforms_secret_goes_needs_the_secret_again(api: ImmutaClient, platform: str) -> None:
    technology, _ = NAMES[platform]
    sent, moved = sample(platform)
    secret = secret_of(platform)
    key = unique_key(f"platid{platform}")
    await api.register(key, {"technology": technology} | sent)
    await api.wait_idle(key)
    path = f"/api/connections/{key}"
    before = (await api.call("GET", path)).body

    for secret_sent in ({}, {secret: REDACTED}):
        for dry_run in ("true", "false"):
            reply = await api.call("PATCH", path, params={"dryRun": dry_run}, json={"connection": moved | secret_sent})
            assert_problem(reply, 422, f"connection.{secret}")
    put = {"connection": before["connection"] | moved}  # "[REDACTED]": the stored secret, to a new target
    assert_problem(await api.call("PUT", f"/data/connection/{key}", json=put, auth="bare"), 422, secret)
    assert (await api.call("GET", path)).body == before

    # Sending back what GET showed changes nothing (a v1 PUT of it re-syncs the same target).
    reply = await api.call("PATCH", path, json={"connection": before["connection"]})
    assert reply.status == 200 and reply.body["connection"] == before["connection"], reply
    reply = await api.call("PUT", f"/data/connection/{key}", json={"connection": before["connection"]}, auth="bare")
    assert reply.status == 200 and reply.body["objectPath"] == [key], reply
    await api.wait_idle(key)

    # With the secret the same change goes through; a value the spec refuses is a 400 naming the field.
    reply = await api.call("PATCH", path, json={"connection": moved | {secret: sent[secret]}})
    assert reply.status == 200 and all(reply.body["connection"][n] == v for n, v in moved.items()), reply
    field = next(iter(moved))
    assert_problem(await api.call("PATCH", path, json={"connection": {field: {"not": "valid"}, secret: "x"}}), 400,
                   f"connection.{field}")  # fmt: skip
    assert_problem(await api.call("PATCH", path, json={"connection": {"technology": "PostgreSQL"}}), 400, "technology")


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_platform_integration_created_through_secoda_is_an_immuta_connection(
    api: ImmutaClient, platform: str
) -> None:
    technology, secoda_type = NAMES[platform]
    sent, _ = sample(platform)
    credentials = {
        ("host" if name == "hostname" else "user" if name == "username" else name): value
        for name, value in sent.items()
    }  # Secoda's names: `host` is ours, `user` is its `username`
    reply = await api.call("POST", SECODA, json={"type": secoda_type, "name": "A platform", "credentials": credentials})
    assert reply.status == 201 and reply.body["type"] == secoda_type and reply.body["credentials"] == {}, reply
    integration_id = reply.body["id"]
    assert sent[secret_of(platform)] not in str(reply.body)

    connection = await api.call("GET", f"/api/connections/{integration_id}")
    assert connection.status == 200 and connection.body["connection"]["technology"] == technology, connection
    assert connection.body["connection"][secret_of(platform)] == REDACTED
    assert (await api.call("GET", f"{SECODA}/{integration_id}")).body == reply.body

    bad = await api.call("POST", SECODA, json={"type": secoda_type, "credentials": credentials | {"nope": 1}})
    assert bad.status == 400 and "credentials.nope" in bad.body["detail"], bad


FILE_PLATFORMS = [pytest.param(name, marks=pytest.mark.skipif(Source(name) not in SPECS,
                                                              reason=f"no {name} spec registered in SPECS yet"))
                  for name in ("sqlite", "duckdb")]  # fmt: skip


@pytest.mark.parametrize("platform", FILE_PLATFORMS)
async def test_a_database_file_is_a_connection_under_our_name_and_needs_no_secret(
    api: ImmutaClient, platform: str
) -> None:
    """Immuta and Secoda have no name for SQLite and DuckDB: both show ours. Without FILE_SOURCES_ROOT (the stack
    inherits the environment) the platforms are off: a 400 naming the path in each dialect's terms."""
    root = os.environ.get("FILE_SOURCES_ROOT")
    key = unique_key(f"plat{platform}")
    path = os.path.join(root or "/nowhere", f"{key}.db")
    reply = await api.call("POST", "/api/connections", json={"connectionKey": key, "connection": {
        "technology": platform, "path": path}})  # fmt: skip
    secoda = await api.call("POST", SECODA, json={"type": platform, "credentials": {"path": path}})
    if root is None:
        assert_problem(reply, 400, "connection.path", "FILE_SOURCES_ROOT")
        assert secoda.status == 400 and "credentials.path" in secoda.body["detail"], secoda
        return
    assert reply.status == 201, reply
    assert reply.body["connection"] == {"technology": platform, "path": path, "authenticationType": "none"}, reply
    assert secoda.status == 201 and secoda.body["type"] == platform, secoda
    moved = os.path.join(root, f"{key}-moved.db")
    patched = await api.call("PATCH", f"/api/connections/{key}", json={"connection": {"path": moved}})
    assert patched.status == 200 and patched.body["connection"]["path"] == moved, patched  # no secret to resend
    assert_problem(await api.call("PATCH", f"/api/connections/{key}", json={"connection": {"path": "/etc/passwd"}}),
                   400, "connection.path")  # fmt: skip
