"""Kafka helpers: the one place client options are built from settings, client factories, topic creation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from shared import topics
from shared.settings import KafkaSettings

# Settings, or a bare bootstrap string: a local PLAINTEXT broker with the default layout (tests, tools).
KafkaTarget = KafkaSettings | str


def kafka_settings(kafka: KafkaTarget) -> KafkaSettings:
    return KafkaSettings.model_construct(kafka_bootstrap=kafka) if isinstance(kafka, str) else kafka


def client_kwargs(kafka: KafkaTarget) -> dict[str, Any]:
    """Connection and security options every producer, consumer and admin client gets."""
    kafka = kafka_settings(kafka)
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.kafka_bootstrap,
        "security_protocol": kafka.kafka_security_protocol,
    }
    if kafka.kafka_uses_tls:
        # No CA file: the system's trust store (managed services present publicly signed certificates).
        kwargs["ssl_context"] = create_ssl_context(
            cafile=kafka.kafka_ssl_cafile, certfile=kafka.kafka_ssl_certfile, keyfile=kafka.kafka_ssl_keyfile
        )
    if kafka.kafka_security_protocol.startswith("SASL_"):
        assert kafka.kafka_sasl_password is not None  # checked by the settings
        kwargs |= {
            "sasl_mechanism": kafka.kafka_sasl_mechanism,
            "sasl_plain_username": kafka.kafka_sasl_username,  # aiokafka's name for PLAIN and SCRAM alike
            "sasl_plain_password": kafka.kafka_sasl_password.get_secret_value(),
        }
    return kwargs


def compression(kafka: KafkaSettings) -> str | None:
    return None if kafka.kafka_compression == "none" else kafka.kafka_compression


def make_producer(kafka: KafkaTarget, client_id: str) -> AIOKafkaProducer:
    # Idempotent producer with acks=all: a retried send neither duplicates nor reorders a partition.
    return AIOKafkaProducer(
        **client_kwargs(kafka),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_request_size=kafka_settings(kafka).kafka_max_message_bytes,
        compression_type=compression(kafka_settings(kafka)),
    )


def make_consumer(
    kafka: KafkaTarget, *topic_names: str, group_id: str | None, client_id: str, from_latest: bool = False
) -> AIOKafkaConsumer:
    # Offsets are committed by hand, only after the work for a message is durable.
    return AIOKafkaConsumer(
        *topic_names,
        **client_kwargs(kafka),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="latest" if from_latest else "earliest",
        fetch_max_wait_ms=500,
        max_partition_fetch_bytes=kafka_settings(kafka).kafka_max_message_bytes,
        fetch_max_bytes=4 * kafka_settings(kafka).kafka_max_message_bytes,
        isolation_level="read_committed",
    )


def make_admin(kafka: KafkaTarget, client_id: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_kwargs(kafka), client_id=client_id)


async def ensure_topics(kafka: KafkaTarget) -> list[str]:
    """Create our topics that do not exist yet, laid out as the settings say. Returns the names created."""
    layout = kafka_settings(kafka)
    admin = make_admin(kafka, client_id="ensure-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=name,
                num_partitions=layout.kafka_topic_partitions,
                replication_factor=layout.kafka_replication_factor,
                topic_configs={
                    "min.insync.replicas": str(layout.kafka_min_insync_replicas),
                    "max.message.bytes": str(layout.kafka_max_message_bytes),
                }
                | topics.TOPIC_CONFIGS.get(name, {}),
            )
            for name in topics.ALL_TOPICS
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
    finally:
        await admin.close()
    return [t.name for t in missing]


class KafkaPublisher:
    """An idempotent producer, replaced after every failure.

    aiokafka does not rewind an idempotent producer's sequence numbers when the broker rejects a batch:
    the next batch of that partition fails with OutOfOrderSequenceNumber and the producer is dead for
    good. So a failed batch costs a new producer, never the relay."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        self._make_producer = make_producer
        self._producer: AIOKafkaProducer | None = None
        # One producer at a time: concurrent first sends must not each start one, and no send may go out
        # on a new producer while the old one still flushes (one partition's order spans the switch).
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = self._make_producer()
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await (await self._started()).send(topic, value, key=key)
        return future

    async def topic_exists(self, topic: str) -> bool:
        client = (await self._started()).client
        if client.cluster.partitions_for_topic(topic) is not None:
            return True
        # Not in the cached metadata: ask the cluster (producer.send would wait for a topic that does not
        # exist for its whole request timeout, and then fail the same way as when the broker is down).
        metadata = await client.fetch_all_metadata()
        return topic in metadata.topics()

    async def reset(self) -> None:
        async with self._lock:
            if self._producer is not None:
                try:
                    await self._producer.stop()  # flushes (or fails) what is pending before anything new goes out
                finally:
                    self._producer = None
