"""Wires the connector: pool, producer, consumers, executor. Everything is opened here and closed here."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.connector.connection_testing import CONSUMER_GROUP as TESTS_GROUP
from services.connector.connection_testing import ConnectionTester, answer_connection_tests
from services.connector.executor import ExecutorConfig, RunExecutor
from services.connector.reporting import KafkaReporter
from services.connector.service import ConnectorService
from services.connector.settings import ConnectorSettings
from services.core.crypto import CredentialCipher
from services.core.sources import SystemResolver
from shared import ops, topics
from shared.kafka import KafkaPublisher, make_consumer, make_producer
from shared.metrics import CONNECTOR, record_consumer_lag
from shared.postgres import create_pool
from shared.process import Supervisor

log = structlog.get_logger()
CONSUMER_GROUP = "connector"


def connector_ops(pool: asyncpg.Pool, requests: AIOKafkaConsumer, tests: AIOKafkaConsumer) -> ops.Ops:
    """Ready when it can take runs: the database answers and the group assigned it run-request partitions.
    Lag is no readiness criterion here: a busy connector pauses its partitions by design."""

    async def refresh() -> None:
        await record_consumer_lag(CONNECTOR.consumer_lag, {CONSUMER_GROUP: requests, TESTS_GROUP: tests})

    checks = {"database": ops.database_reachable(pool), "kafka": ops.partitions_assigned(requests)}
    return ops.Ops(CONNECTOR.registry, checks, refresh)


async def run_connector(settings: ConnectorSettings) -> None:
    cipher = CredentialCipher.from_settings(settings.credentials_key, settings.is_dev)
    pool = await create_pool(settings.database_url, max_size=settings.max_concurrent_runs + 4)
    # Started on first use and replaced after a failed delivery (see KafkaReporter).
    publisher = KafkaPublisher(lambda: make_producer(settings, client_id=f"connector-{settings.connector_id}"))
    requests = make_consumer(settings, group_id=CONSUMER_GROUP, client_id=f"connector-{settings.connector_id}")
    # No group: every instance sees every cancellation, from the moment it starts.
    cancellations = make_consumer(
        settings, topics.RUN_CANCELLATIONS, group_id=None,
        client_id=f"connector-cancel-{settings.connector_id}", from_latest=True,
    )  # fmt: skip
    tests = make_consumer(
        settings, topics.CONNECTION_TESTS, group_id=TESTS_GROUP, client_id=f"connector-tests-{settings.connector_id}"
    )
    tester = ConnectionTester(
        pool, cipher, settings.connector_id, settings.allow_private_sources, SystemResolver(),
        clock=lambda: datetime.now(UTC),
    )  # fmt: skip
    try:
        await cancellations.start()
        await requests.start()
        await tests.start()
        executor = RunExecutor(
            pool,
            KafkaReporter(publisher),
            cipher,
            ExecutorConfig(
                connector_id=settings.connector_id,
                heartbeat_interval_s=settings.heartbeat_interval_s,
                progress_interval_s=settings.progress_interval_s,
                allow_private_sources=settings.allow_private_sources,
                run_timeout_s=settings.run_timeout_s,
                # Half the broker's limit: the size check counts the payload, the batch adds framing.
                max_event_bytes=settings.kafka_max_message_bytes // 2,
            ),
            clock=lambda: datetime.now(UTC),
        )
        service = ConnectorService(
            requests, cancellations, executor, settings.max_concurrent_runs, settings.shutdown_grace_s
        )
        CONNECTOR.runs_in_flight.set_function(lambda: service.runs_in_flight)
        log.info("connector_started", connector_id=settings.connector_id)
        async with (
            ops.serving(settings.ops_host, settings.ops_port, connector_ops(pool, requests, tests), "connector", pool),
            Supervisor() as supervisor,
        ):
            supervisor.start("connection_tests", answer_connection_tests(tests, tester))
            await service.run()
    finally:
        await tests.stop()
        await requests.stop()
        await cancellations.stop()
        await publisher.reset()
        await pool.close()
