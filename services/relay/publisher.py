"""What the relay needs from Kafka, and which send failures can never succeed for that message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

# Failures that are about the message itself, so sending it again can only fail again. Everything else
# (broker down, timeouts, leader changes, authorisation) is about the cluster: retried, never dead-lettered.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    MessageSizeTooLargeError,  # larger than KAFKA_MAX_MESSAGE_BYTES, or than the topic's max.message.bytes
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
)


def is_permanent(error: BaseException) -> bool:
    return isinstance(error, PERMANENT_ERRORS)


class Publisher(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        """Queue one message; the future resolves when the broker acknowledged it (or fails)."""

    async def topic_exists(self, topic: str) -> bool:
        """Whether the cluster has `topic`; raises a KafkaError when the cluster cannot be asked."""

    async def reset(self) -> None:
        """Forget the connection after a failure; the next call starts afresh."""


class KafkaPublisher:
    """An idempotent producer, replaced after every failure.

    aiokafka does not rewind an idempotent producer's sequence numbers when the broker rejects a batch:
    the next batch of that partition fails with OutOfOrderSequenceNumber and the producer is dead for
    good. So a failed batch costs a new producer, never the relay."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        self._make_producer = make_producer
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
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
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
