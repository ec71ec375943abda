"""What the relay needs from Kafka (shared.kafka.KafkaPublisher), and which send failures can never succeed."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

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
