"""Our settings reach a broker that requires SASL, the way a managed Kafka is reached (the test broker's
SASL_PLAINTEXT listener, PLAIN users; `make test` opens it on TEST_KAFKA_PORT + 2)."""

from __future__ import annotations

import logging
import os
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError

from shared import topics
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.kafka_support import marker_event, received

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sasl_listener() -> tuple[str, str, str]:
    """(bootstrap, user, password) of the broker's SASL listener."""
    port, users = os.environ.get("KAFKA_SASL_PORT"), os.environ.get("KAFKA_SASL_USERS", "")
    if not port or ":" not in users:
        pytest.skip("the broker has no SASL listener (KAFKA_SASL_PORT/KAFKA_SASL_USERS: `make test` sets them)")
    user, password = users.split()[0].split(":", 1)
    return f"127.0.0.1:{port}", user, password


def sasl_settings(bootstrap: str, user: str, password: str) -> KafkaSettings:
    return KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME=user,
        KAFKA_SASL_PASSWORD=password,
    )


async def test_admin_producer_and_consumer_work_through_sasl_with_our_settings(sasl_listener):
    settings = sasl_settings(*sasl_listener)
    await ensure_topics(settings)  # the admin client authenticates too
    marker = marker_event("sasl")
    producer = make_producer(settings, client_id="sasl-test")
    consumer = make_consumer(settings, topics.RUN_EVENTS, group_id=f"sasl-{uuid.uuid4()}", client_id="sasl-test")
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topics.RUN_EVENTS, marker, key=b"sasl")
        assert await received(consumer, [marker]) == [marker]
    finally:
        await consumer.stop()
        await producer.stop()


async def test_a_wrong_password_fails_to_start_and_the_log_says_why_without_the_password(sasl_listener, caplog):
    bootstrap, user, _ = sasl_listener
    producer = make_producer(sasl_settings(bootstrap, user, "not-the-password-0xdead"), client_id="sasl-wrong")
    with caplog.at_level(logging.WARNING), pytest.raises(KafkaConnectionError):
        try:
            await producer.start()
        finally:
            await producer.stop()
    assert "Invalid username or password" in caplog.text
    assert "not-the-password-0xdead" not in caplog.text
