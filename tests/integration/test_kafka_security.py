"""Kafka settings against the real broker: SASL the way a managed Kafka is reached (the test broker's
SASL_PLAINTEXT listener, PLAIN users; `make test` opens it on TEST_KAFKA_PORT + 2), and the topic layout."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError

from shared import topics
from shared.kafka import ensure_topics, make_admin, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.kafka_support import marker_event, received

pytestmark = pytest.mark.integration


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
    await assert_round_trip(settings, "sasl")


async def assert_round_trip(settings: KafkaSettings, name: str) -> None:
    """A message produced with our producer settings arrives through a consumer with ours."""
    marker = marker_event(name)
    producer = make_producer(settings, client_id=name)
    consumer = make_consumer(settings, topics.RUN_EVENTS, group_id=f"{name}-{uuid.uuid4()}", client_id=name)
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topics.RUN_EVENTS, marker, key=name.encode())
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


async def test_migrate_creates_missing_topics_with_the_configured_layout(kafka_bootstrap, monkeypatch):
    names = tuple(f"test.layout-{i}.{uuid.uuid4().hex[:8]}" for i in range(2))
    monkeypatch.setattr(topics, "ALL_TOPICS", names)
    monkeypatch.setattr(topics, "TOPIC_CONFIGS", {names[0]: {"retention.ms": "3600000"}})  # like connection tests
    settings = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_PARTITIONS=3,
                             KAFKA_REPLICATION_FACTOR=1, KAFKA_MIN_INSYNC_REPLICAS=1,
                             KAFKA_MAX_MESSAGE_BYTES=2 * 1024 * 1024)  # fmt: skip
    assert sorted(await ensure_topics(settings)) == sorted(names)
    assert await ensure_topics(settings) == []  # existing topics are left alone
    admin = make_admin(kafka_bootstrap, client_id="test-layout")
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
    assert [len(t["partitions"]) for t in described] == [3, 3]
    values = {name: value for response in configs for resource in response.resources
              for name, value, *_ in resource[4]}  # fmt: skip
    assert values["min.insync.replicas"] == "1" and values["max.message.bytes"] == str(2 * 1024 * 1024)
    retention = {resource[3]: dict((name, value) for name, value, *_ in resource[4])["retention.ms"]
                 for response in configs for resource in response.resources}  # fmt: skip
    assert retention[names[0]] == "3600000" and retention[names[1]] != "3600000"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_compression_setting_reaches_a_consumer(kafka_bootstrap, codec):
    # The broker keeps a batch as the producer compressed it; a codec our client cannot decode would only show
    # on the consuming side.
    settings = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_COMPRESSION=codec)
    await assert_round_trip(settings, f"codec-{codec}")
