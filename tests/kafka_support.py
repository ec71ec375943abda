"""Test helpers for the real broker: recognisable messages, and waiting until they arrived."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer

from shared.events import HeartbeatPayload, RunHeartbeat
from tests.support import eventually


def marker_event(name: str = "marker") -> bytes:
    """A valid envelope no service acts on (a heartbeat of an unknown run), unique per call."""
    return RunHeartbeat(integration_id=uuid.uuid4(), integration_external_id=name, run_id=uuid.uuid4(),
                        payload=HeartbeatPayload(connector_id="test")).to_bytes()  # fmt: skip


async def received(consumer: AIOKafkaConsumer, expected: list[bytes], timeout: float = 30) -> list[bytes]:
    """The expected values in the order they arrived, once all of them arrived."""
    seen: list[bytes] = []

    async def all_arrived() -> bool:
        batches = await consumer.getmany(timeout_ms=200)
        seen.extend(m.value for ms in batches.values() for m in ms if m.value in expected)
        return len(seen) >= len(expected)

    await eventually(all_arrived, timeout=timeout)
    return seen
