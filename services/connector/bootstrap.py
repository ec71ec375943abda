"""Wires the connector: pool, producer, consumers, executor. Everything is opened here and closed here."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from services.connector.connection_testing import CONSUMER_GROUP as TESTS_GROUP
from services.connector.connection_testing import ConnectionTester, answer_connection_tests
from services.connector.executor import ExecutorConfig, RunExecutor
from services.connector.reporting import KafkaReporter
from services.connector.service import ConnectorService
from services.connector.settings import ConnectorSettings
from services.core.crypto import CredentialCipher
from services.core.sources import SystemResolver
from shared import topics
from shared.kafka import KafkaPublisher, make_consumer, make_producer
from shared.postgres import create_pool
from shared.process import Supervisor

log = structlog.get_logger()
CONSUMER_GROUP = "connector"


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
        log.info("connector_started", connector_id=settings.connector_id)
        async with Supervisor() as supervisor:
            supervisor.start("connection_tests", answer_connection_tests(tests, tester))
            await ConnectorService(
                requests, cancellations, executor, settings.max_concurrent_runs, settings.shutdown_grace_s
            ).run()
    finally:
        await tests.stop()
        await requests.stop()
        await cancellations.stop()
        await publisher.reset()
        await pool.close()
