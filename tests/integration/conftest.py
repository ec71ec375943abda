"""Factories for integration tests: integrations owned by an org-owner principal."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from services.core.crypto import CredentialCipher
from services.core.ingestion import Runtime
from services.core.integrations import IntegrationService, NewIntegration
from services.core.model import Integration, Principal
from shared.kafka import make_admin

pytestmark = pytest.mark.integration

OWNER = Principal(key_id=uuid.uuid4(), name="owner", org_owner=True)


@pytest.fixture
def integrations(runtime: Runtime) -> IntegrationService:
    return IntegrationService(runtime, CredentialCipher.from_settings(None, is_dev=True), allow_private_sources=True)


@pytest.fixture
def make_integration(integrations: IntegrationService) -> Callable[..., Awaitable[Integration]]:
    async def make(database: str = "nowhere", **overrides: object) -> Integration:
        body = {
            "externalId": f"it-{uuid.uuid4().hex[:12]}",
            "name": "Integration test",
            "source": "postgres",
            "configuration": {"host": "127.0.0.1", "port": 5432, "database": database, "username": "postgres"},
            "credentials": {"password": "secret-pw"},
        } | overrides
        return await integrations.create(OWNER, NewIntegration.model_validate(body))

    return make


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A fresh two-partition topic of the test's own: nothing else produces to it or consumes from it."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    admin = make_admin(kafka_bootstrap, client_id="test-topics")
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=name, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def produce(kafka_bootstrap: str, topic: str, count: int) -> None:
    """`count` small messages onto partition 0 of `topic`."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"message {i}".encode(), partition=0)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def sasl_listener() -> tuple[str, str, str]:
    """(bootstrap, user, password) of the broker's SASL listener."""
    port, users = os.environ.get("KAFKA_SASL_PORT"), os.environ.get("KAFKA_SASL_USERS", "")
    if not port or ":" not in users:
        pytest.skip("the broker has no SASL listener (KAFKA_SASL_PORT/KAFKA_SASL_USERS: `make test` sets them)")
    user, password = users.split()[0].split(":", 1)
    return f"127.0.0.1:{port}", user, password
