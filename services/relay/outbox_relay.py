"""The outbox relay: publishes committed outbox rows to Kafka, then deletes them (at-least-once).

A row that can never be published (larger than the broker accepts, unknown topic) is moved to
outbox_dead_letters with the reason, so the rows behind it keep flowing. A failure of the cluster
(broker down, timeouts) rolls the batch back; it is retried and nothing is dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from services.core.store import outbox
from services.relay.listener import listen_for_commits
from services.relay.publisher import Publisher, is_permanent
from shared.errors import is_retriable
from shared.metrics import RELAY
from shared.process import Supervisor

log = structlog.get_logger()


@dataclass(frozen=True)
class BatchLimits:
    max_rows: int = 500
    # All of a batch can be in flight at once: keep it within one produce request the broker accepts.
    max_bytes: int = 16 * 1024 * 1024


@dataclass
class _Outcome:
    done: list[int] = field(default_factory=list)  # published, or nothing left to publish
    dead: list[tuple[int, int, str]] = field(default_factory=list)  # (id, size, reason)

    def dead_letter(self, row: asyncpg.Record, reason: str) -> None:
        self.dead.append((row["id"], outbox.message_size(row), reason))

    def failed(self, row: asyncpg.Record, error: BaseException) -> None:
        if not is_permanent(error):
            raise error  # the cluster's problem: the whole batch is rolled back and retried
        self.dead_letter(row, f"{type(error).__name__}: {error}")


async def relay_once(pool: asyncpg.Pool, publisher: Publisher, limits: BatchLimits = BatchLimits()) -> int:
    """Publish one batch. Returns how many rows it settled (published, dead-lettered or empty)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await outbox.claim_batch(conn, limits.max_rows, limits.max_bytes)
        if not rows:
            return 0
        outcome = await _publish(publisher, rows)
        await outbox.delete(conn, outcome.done)
        if outcome.dead:
            await outbox.dead_letter(conn, outcome.dead)
            for message_id, size, reason in outcome.dead:
                log.error("outbox_message_dead_lettered", outbox_id=message_id, size_bytes=size, reason=reason)
    RELAY.published.inc(len(outcome.done))
    RELAY.dead_letters.labels("outbox").inc(len(outcome.dead))
    return len(rows)


async def _publish(publisher: Publisher, rows: Sequence[asyncpg.Record]) -> _Outcome:
    outcome = _Outcome()
    missing = {topic for topic in {r["topic"] for r in rows} if not await publisher.topic_exists(topic)}
    sent: list[tuple[asyncpg.Record, asyncio.Future[Any]]] = []
    for row in rows:
        if row["value"] is None:
            outcome.done.append(row["id"])
        elif row["topic"] in missing:
            outcome.dead_letter(row, f"topic '{row['topic']}' does not exist on the cluster")
        else:
            try:
                sent.append((row, await _send(publisher, row)))
            except Exception as error:
                outcome.failed(row, error)
    results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
    failed: list[tuple[asyncpg.Record, BaseException]] = []
    for (row, _), result in zip(sent, results, strict=True):
        if isinstance(result, BaseException):
            failed.append((row, result))
        else:
            outcome.done.append(row["id"])
    if not any(is_permanent(failure) for _, failure in failed):
        for row, failure in failed:
            outcome.failed(row, failure)  # raises: the cluster's problem
        return outcome
    # The broker rejected a record batch: the producer is unusable from there on (the batches behind it
    # in that partition failed out of sequence). With a new one, send each failed message alone, so that
    # only the culprit is dead-lettered, never a neighbour that shared its batch or came after it.
    await publisher.reset()
    for row, _ in failed:
        try:
            await (await _send(publisher, row))
            outcome.done.append(row["id"])
        except Exception as error:
            outcome.failed(row, error)
            await publisher.reset()  # it was rejected again: this producer is spent too
    return outcome


async def _send(publisher: Publisher, row: asyncpg.Record) -> asyncio.Future[Any]:
    return await publisher.send(row["topic"], bytes(row["value"]), bytes(row["key"]))


async def run_relay(
    pool: asyncpg.Pool, publisher: Publisher, limits: BatchLimits = BatchLimits(), poll_interval_s: float = 1.0
) -> None:
    wake = asyncio.Event()
    async with Supervisor() as supervisor:
        supervisor.start("outbox_listener", listen_for_commits(pool, wake))
        while True:
            wake.clear()
            try:
                settled = await relay_once(pool, publisher, limits)
            except Exception as error:  # the broker or the database is away; anything else is logged loudly
                log.log(logging.WARNING if is_retriable(error) else logging.ERROR, "outbox_relay_retry",
                        error=f"{type(error).__name__}: {error}")  # fmt: skip
                await asyncio.sleep(1.0)
                await _reset(publisher)
                continue
            if settled:
                continue  # more may be waiting
            try:
                await asyncio.wait_for(wake.wait(), timeout=poll_interval_s)
            except TimeoutError:
                pass


async def _reset(publisher: Publisher) -> None:
    try:
        await publisher.reset()
    except Exception as error:  # stopping flushes what is pending, which can fail too; the next start is fresh
        log.warning("outbox_producer_reset_failed", error=str(error))
