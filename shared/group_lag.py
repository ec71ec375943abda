"""Consumer-group lag as the broker sees it: committed offsets of each group against the partitions' end
offsets. Read from outside the groups (the API's system status), unlike `metrics.consumer_lag`, which a
member reads of its own assignment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from shared.kafka import KafkaTarget, client_kwargs, make_admin

# The groups of our services (each service's CONSUMER_GROUP; a unit test keeps them in step).
OUR_GROUPS = ("connector", "connector-tests", "projector")
LAG_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    lag: int


async def group_lag(
    kafka: KafkaTarget, groups: tuple[str, ...] = OUR_GROUPS, timeout_s: float = LAG_TIMEOUT_S
) -> list[PartitionLag]:
    """Per group and partition it has committed on: messages after its committed offset. Raises TimeoutError
    (or a Kafka error) when the broker does not answer within `timeout_s`."""
    admin = make_admin(kafka, client_id="icp-status")
    # No group: this consumer only asks for end offsets, it never joins or commits anything.
    ends_reader = AIOKafkaConsumer(**client_kwargs(kafka), group_id=None, client_id="icp-status",
                                   enable_auto_commit=False)  # fmt: skip
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            await ends_reader.start()
            committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
            partitions = {tp for offsets in committed.values() for tp in offsets}
            ends = await ends_reader.end_offsets(list(partitions)) if partitions else {}
    finally:
        await ends_reader.stop()
        await admin.close()
    return [
        PartitionLag(group, tp.topic, tp.partition, max(ends[tp] - at.offset, 0))
        for group, offsets in committed.items()
        for tp, at in sorted(offsets.items())
        if at.offset >= 0 and tp in ends
    ]
