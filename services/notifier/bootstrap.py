"""Wires the notifier process: a consumer of run events that queues deliveries, and the worker that sends them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.core.crypto import CredentialCipher
from services.notifier.consumer import run_consumer
from services.notifier.delivery import RetryPolicy, Sender, Worker
from services.notifier.settings import NotifierSettings
from services.notifier.targets import GuardedResolver
from shared import ops, topics
from shared.kafka import make_consumer
from shared.metrics import NOTIFIER, record_consumer_lag
from shared.postgres import create_pool
from shared.process import Supervisor

log = structlog.get_logger()
CONSUMER_GROUP = "notifier"
READY_MAX_LAG = 1000  # run events not yet read, on any partition, while the notifier still counts as ready


def notifier_ops(pool: asyncpg.Pool, consumer: AIOKafkaConsumer, max_lag: int = READY_MAX_LAG) -> ops.Ops:
    """Ready when the database answers and the group gave it run-event partitions it keeps up with."""

    async def refresh() -> None:
        await record_consumer_lag(NOTIFIER.consumer_lag, {CONSUMER_GROUP: consumer})

    # A consumer that cannot queue what it reads (the database refusing, a bug) keeps retrying: its lag shows it.
    checks = {"database": ops.database_reachable(pool), "kafka": ops.partitions_assigned(consumer, max_lag)}
    return ops.Ops(NOTIFIER.registry, checks, refresh)


async def run_notifier(settings: NotifierSettings) -> None:
    cipher = CredentialCipher.from_settings(settings.credentials_key, settings.is_dev)  # fail fast: no key
    policy = settings.target_policy
    # Each delivery in flight records its outcome on a connection of its own; the consumer, the claimer and the
    # status recorder need theirs: a delivery waiting for a connection past its lease would be sent twice.
    pool = await create_pool(settings.database_url, max_size=settings.concurrency + 4)
    consumer = make_consumer(settings, topics.RUN_EVENTS, group_id=CONSUMER_GROUP, client_id="notifier")
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=settings.concurrency)
    session = aiohttp.ClientSession(connector=connector)
    worker = Worker(
        pool=pool, sender=Sender(session, cipher, policy, settings.timeout_s),
        retry=RetryPolicy(settings.max_attempts, settings.retry_initial_s, settings.retry_max_s),
        lease=settings.lease, clock=lambda: datetime.now(UTC), concurrency=settings.concurrency,
        poll_interval_s=settings.poll_interval_s,
    )  # fmt: skip
    wake = asyncio.Event()
    try:
        await consumer.start()
        log.info("notifier_started", max_attempts=settings.max_attempts, timeout_s=settings.timeout_s)
        async with ops.serving(settings.ops_host, settings.ops_port, notifier_ops(pool, consumer), "notifier", pool):
            async with Supervisor() as supervisor:
                supervisor.start("webhook_deliveries", worker.run(wake))
                await run_consumer(pool, consumer, wake, lambda: datetime.now(UTC))
    finally:
        await consumer.stop()
        await session.close()
        await pool.close()
