"""The consumer of the public run-events topic: queues a delivery per subscriber, then commits the offsets.

It never talks to a receiver: queuing is one short transaction (a redelivered message queues nothing new,
ON CONFLICT DO NOTHING), so a slow or failing receiver cannot hold the topic up. A crash before the commit
reads the messages again; one after it finds the deliveries already queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from services.core.store import webhooks as store
from services.notifier.notifications import NOTIFIED_TYPES, delivery_id, notification_for
from shared.errors import is_retriable
from shared.events import event_type, parse_run_log_event

log = structlog.get_logger()
Clock = Callable[[], datetime]


async def run_consumer(pool: asyncpg.Pool, consumer: AIOKafkaConsumer, wake: asyncio.Event, clock: Clock) -> None:
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=500)
        if not batches:
            continue
        notifications = [n for messages in batches.values() for m in messages if (n := _notification(m))]
        if notifications:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(Exception), wait=wait_exponential_jitter(max=10), before_sleep=_retrying
            ):  # the database is away (or a bug met this data): nothing is committed until it is queued
                with attempt:
                    queued = await queue_notifications(pool, notifications, clock())
            if queued:
                wake.set()
        try:
            await consumer.commit({tp: messages[-1].offset + 1 for tp, messages in batches.items()})
        except KafkaError as error:  # the group moved on: the new owner reads them again, and queues nothing new
            log.warning("commit_failed", error=f"{type(error).__name__}: {error}")


async def queue_notifications(pool: asyncpg.Pool, notifications: Sequence[store.Notification], now: datetime) -> int:
    """Queue one delivery per (subscriber, notification), in one transaction. Returns how many were new."""
    async with pool.acquire() as conn, conn.transaction():
        rows = [
            (delivery_id(webhook_id, n.event_id), webhook_id, n)
            for n in notifications
            for webhook_id in await store.subscribers(conn, n)
        ]
        return await store.queue(conn, rows, now) if rows else 0


def _notification(message: ConsumerRecord[bytes, bytes]) -> store.Notification | None:
    if event_type(message.value or b"") not in NOTIFIED_TYPES:
        return None  # most of the topic is asset batches: never parsed here
    try:
        event = parse_run_log_event(message.value or b"")
    except ValidationError:
        log.warning("run_event_unreadable", partition=message.partition, offset=message.offset)
        return None
    return notification_for(event)


def _retrying(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    level = logging.WARNING if error is not None and is_retriable(error) else logging.ERROR
    log.log(level, "notifications_queue_retry", error=f"{type(error).__name__}: {error}", attempt=state.attempt_number)
