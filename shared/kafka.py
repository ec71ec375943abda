"""Kafka helpers: producer and consumer factories with our delivery settings, and topic creation."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_lz4
from aiokafka.errors import TopicAlreadyExistsError

from shared import topics


def make_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    # Idempotent producer with acks=all: a retried send neither duplicates nor reorders a partition.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_request_size=8 * 1024 * 1024,
        compression_type="lz4" if has_lz4() else None,
    )


def make_consumer(
    bootstrap: str, *topic_names: str, group_id: str | None, client_id: str, from_latest: bool = False
) -> AIOKafkaConsumer:
    # Offsets are committed by hand, only after the work for a message is durable.
    return AIOKafkaConsumer(
        *topic_names,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="latest" if from_latest else "earliest",
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        isolation_level="read_committed",
    )


async def ensure_topics(bootstrap: str, partitions: int = topics.PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="ensure-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=partitions, replication_factor=1)
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
