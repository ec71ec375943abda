"""The SSRF guard end to end: at creation, and again when a run starts, through an injected resolver.

Only 127.0.0.1 is ever dialled; the public address below is only ever resolved to, never connected to.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest

from services.connector.executor import ExecutorConfig, RunExecutor, RunHandle
from services.core import ingestion
from services.core.crypto import CredentialCipher
from services.core.errors import InvalidInput
from services.core.integrations import IntegrationService, NewIntegration
from tests.integration.conftest import OWNER
from tests.integration.test_executor import RecordingReporter
from tests.resolvers import PUBLIC_ADDRESS, MappedResolver
from tests.support import SHOP_COUNTED, create_shop_database

pytestmark = pytest.mark.integration

NAME = "catalog.db.example.test"  # no real resolver knows it


@pytest.fixture(scope="module")
async def source(database: str) -> str:
    return await create_shop_database(database, "source_dialing_it")


def service(runtime, resolver: MappedResolver, allow_private: bool) -> IntegrationService:
    cipher = CredentialCipher.from_settings(None, is_dev=True)
    return IntegrationService(runtime, cipher, allow_private_sources=allow_private, resolver=resolver)


async def create(integrations: IntegrationService, dsn: str, external_id: str):
    url = urlparse(dsn)
    return await integrations.create(OWNER, NewIntegration.model_validate({
        "externalId": external_id, "name": "Dialing", "source": "postgres",
        "configuration": {"host": NAME, "port": url.port, "database": url.path.lstrip("/"), "username": url.username,
                          "sslmode": "disable"},
        "credentials": {"password": url.password},
    }))  # fmt: skip


async def run_once(runtime, pool, integration, resolver: MappedResolver, allow_private: bool) -> RecordingReporter:
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    config = ExecutorConfig(connector_id="test", heartbeat_interval_s=1, progress_interval_s=1,
                            allow_private_sources=allow_private, resolver=resolver)  # fmt: skip
    reporter = RecordingReporter()
    cipher = CredentialCipher.from_settings(None, True)
    await RunExecutor(pool, reporter, cipher, config, lambda: datetime.now(UTC)).execute(RunHandle(run.run_id))
    return reporter


async def test_a_run_connects_to_the_address_the_resolver_answered(runtime, pool, source):
    resolver = MappedResolver({NAME: ["127.0.0.1"]})
    integration = await create(service(runtime, resolver, allow_private=True), source, "dial-resolved")
    reporter = await run_once(runtime, pool, integration, resolver, allow_private=True)
    outcome = reporter.log_events()[-1]
    assert outcome.type == "run.succeeded.v1", outcome.payload
    assert outcome.payload.counts.assets_created == SHOP_COUNTED
    assert resolver.lookups == [NAME]  # once, by us: the driver never resolved the name


async def test_creating_an_integration_whose_host_resolves_privately_is_refused(runtime, source):
    integrations = service(runtime, MappedResolver({NAME: ["10.20.30.40"]}), allow_private=False)
    with pytest.raises(InvalidInput, match=re.escape("resolves to 10.20.30.40, a non-public address")) as refused:
        await create(integrations, source, "dial-private")
    assert refused.value.field == "configuration.host"


async def test_a_host_that_resolves_privately_by_run_time_fails_the_run_saying_so(runtime, pool, source):
    resolver = MappedResolver({NAME: [PUBLIC_ADDRESS]})
    integration = await create(service(runtime, resolver, allow_private=False), source, "dial-rebound")
    resolver.table[NAME] = ["127.0.0.1"]  # the DNS answer changed after the check at creation
    reporter = await run_once(runtime, pool, integration, resolver, allow_private=False)
    assert reporter.types() == ["run.started.v1", "run.failed.v1"]
    message = reporter.log_events()[-1].payload.message
    assert message.startswith("Refused to connect to the source: ")
    assert f"host '{NAME}' resolves to 127.0.0.1, a non-public address" in message
    assert "ALLOW_PRIVATE_SOURCES=false" in message
