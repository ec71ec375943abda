"""Kafka in the contract: the test broker `make test` runs (PLAINTEXT, and its SASL_PLAINTEXT listener).

Kafka has no schemas, columns or keys, so its fixture is its own: two topics named for the contract, at the root,
and the change deletes one topic and creates another (created 1, updated 0, deleted 1). The suite's own topics live
on the same broker, so the crawl is scoped with includeTopics.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.core.sources.kafka import KAFKA
from shared.kafka import make_admin
from tests.sources.contract import Expected, listening
from tests.support import eventually

CUSTOMERS = NewTopic("sales.customers", 3, 1, topic_configs={"retention.ms": "86400000"})
EMPLOYEES = NewTopic("hr.employees", 1, 1, topic_configs={"cleanup.policy": "compact"})
CONTRACTORS = NewTopic("hr.contractors", 2, 1)


def _named(prefix: str, topic: NewTopic) -> NewTopic:
    return NewTopic(prefix + topic.name, topic.num_partitions, topic.replication_factor,
                    topic_configs=topic.topic_configs)  # fmt: skip


async def replace_topics(admin: AIOKafkaAdminClient, gone: list[str], wanted: list[NewTopic]) -> None:
    """Delete `gone` and create `wanted`, until the broker's metadata shows exactly that."""
    existing = set(await admin.list_topics())
    if doomed := sorted(existing & set(gone)):
        await admin.delete_topics(doomed)

    async def deleted() -> bool:
        return not set(doomed) & set(await admin.list_topics())

    await eventually(deleted)

    async def created() -> bool:
        missing = [t for t in wanted if t.name not in await admin.list_topics()]
        if missing:  # a name deleted a moment ago may be refused for a while: try again
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return not missing

    await eventually(created)


class KafkaPlatform:
    spec = KAFKA

    def __init__(self, name: str, prefix: str, sasl: bool) -> None:
        self.name = name
        self.prefix = prefix
        self.sasl = sasl
        self.expected = Expected(
            assets={f"{prefix}sales.customers": "table", f"{prefix}hr.employees": "table"},
            attributes={
                f"{prefix}sales.customers": {
                    "nativeType": "topic",
                    "partitions": 3,
                    "replicationFactor": 1,
                    "retentionMs": 86_400_000,
                    "cleanupPolicy": "delete",
                    "primaryKey": [],
                },
                f"{prefix}hr.employees": {"partitions": 1, "cleanupPolicy": "compact"},
            },
            changed=(1, 0, 1),
        )

    def _plaintext(self) -> tuple[int, str | None]:
        return listening("KAFKA_PORT", 19092)

    def unavailable(self) -> str | None:
        reason = self._plaintext()[1]
        if reason is None and self.sasl:
            if ":" not in os.environ.get("KAFKA_SASL_USERS", ""):
                return "the broker has no SASL users (KAFKA_SASL_USERS: `make test` sets them)"
            reason = listening("KAFKA_SASL_PORT", 19094)[1]
        return reason

    def _sasl_user(self) -> tuple[str, str]:
        user, password = os.environ["KAFKA_SASL_USERS"].split()[0].split(":", 1)
        return user, password

    async def _replace(self, gone: list[str], wanted: list[NewTopic]) -> None:
        admin = make_admin(f"127.0.0.1:{self._plaintext()[0]}", client_id="contract-fixture")
        await admin.start()
        try:
            await replace_topics(admin, gone, [_named(self.prefix, t) for t in wanted])
        finally:
            await admin.close()

    async def create_fixture(self) -> None:
        admin = make_admin(f"127.0.0.1:{self._plaintext()[0]}", client_id="contract-fixture")
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(self.prefix)]
        finally:
            await admin.close()
        await self._replace(ours, [CUSTOMERS, EMPLOYEES])

    async def change_fixture(self) -> None:
        await self._replace([self.prefix + EMPLOYEES.name], [CONTRACTORS])

    def configuration(self) -> dict[str, Any]:
        scope = {"includeTopics": [f"{self.prefix}*"]}
        if not self.sasl:
            return {"bootstrapServers": f"127.0.0.1:{self._plaintext()[0]}"} | scope
        port = listening("KAFKA_SASL_PORT", 19094)[0]
        return {"bootstrapServers": f"127.0.0.1:{port}", "securityProtocol": "SASL_PLAINTEXT",
                "saslMechanism": "PLAIN", "username": self._sasl_user()[0]} | scope  # fmt: skip

    def credentials(self) -> dict[str, Any]:
        return {"password": self._sasl_user()[1]} if self.sasl else {}

    def bad_credentials(self) -> dict[str, Any] | None:
        return {"password": "not-the-password-0xfeed"} if self.sasl else None


PLATFORMS = [
    KafkaPlatform("kafka", "contract.", sasl=False),
    KafkaPlatform("kafka-sasl", "contract-sasl.", sasl=True),
]
