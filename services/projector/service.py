"""The projector's consumer loop: fetch reports, apply them in one transaction, then commit offsets.

About every second it records, per partition, up to when it has applied everything the broker had
acknowledged (`projector_progress`, see `Progress`); the reaper measures heartbeat silence against the
oldest of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.core.store import liveness
from services.core.store.dead_letters import record_dead_letters
from services.projector.handlers import Received, apply_batch, dead_letter, parse
from services.projector.metrics import record_batch
from shared.errors import is_retriable
from shared.metrics import PROJECTOR

log = structlog.get_logger()

PROGRESS_EVERY_S = 1.0
PROBE_TIMEOUT_S = 2.0  # a broker that does not answer the end-offset probe only delays the next mark
GIVE_UP_AFTER = 3  # non-retriable failures of the same batch before it is split
Clock = Callable[[], datetime]


async def run_projection(
    pool: asyncpg.Pool, consumer: AIOKafkaConsumer, clock: Clock = lambda: datetime.now(UTC)
) -> None:
    marked, progress = 0.0, Progress(clock)
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=2000)
        if batches:
            received = [Received(tp.topic, tp.partition, m.offset, m.value) for tp, ms in batches.items() for m in ms]
            await _apply_until_done(pool, received, clock)
            # Only now is the work durable: commit offsets after the DB transaction committed.
            await _commit(consumer, {tp: messages[-1].offset + 1 for tp, messages in batches.items()})
        if time.monotonic() - marked >= PROGRESS_EVERY_S:
            await progress.mark(pool, consumer)
            marked = time.monotonic()


async def _apply_until_done(pool: asyncpg.Pool, received: list[Received], clock: Clock) -> None:
    """Apply a batch, retrying infrastructure errors for as long as they last. A batch that keeps failing
    for another reason (a bug met this data) is split, down to one message, and that one is set aside:
    one bad message must never stop projection for everyone."""
    batch = parse(received)
    delay, failures = 0.5, 0
    while True:
        try:
            async with pool.acquire() as conn:
                outcome = await apply_batch(conn, batch, clock())
            record_batch(outcome)
            if outcome.ignored or outcome.duplicates or outcome.dead_lettered:
                log.info("reports_applied", applied=outcome.applied, ignored=outcome.ignored,
                         duplicates=outcome.duplicates, dead_lettered=outcome.dead_lettered)  # fmt: skip
            return
        except Exception as error:
            retriable = is_retriable(error)
            log.warning("reports_apply_retry" if retriable else "reports_apply_error",
                        error=f"{type(error).__name__}: {error}", delay_s=delay, messages=len(received))  # fmt: skip
            failures += 0 if retriable else 1
            if failures >= GIVE_UP_AFTER:
                await _set_apart(pool, received, clock, f"{type(error).__name__}: {error}")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _set_apart(pool: asyncpg.Pool, received: list[Received], clock: Clock, reason: str) -> None:
    if len(received) > 1:
        half = len(received) // 2
        await _apply_until_done(pool, received[:half], clock)
        await _apply_until_done(pool, received[half:], clock)
        return
    [message] = received
    letter = dead_letter(message, f"cannot be applied: {reason}")
    try:
        async with pool.acquire() as conn:
            await record_dead_letters(conn, [letter])
        log.error("report_set_apart", topic=message.topic, partition=message.partition, offset=message.offset)
        PROJECTOR.dead_letters.labels("connector_reports").inc()
    except Exception as error:  # not even recordable: it stays on the topic, and projection goes on
        log.critical("report_skipped", topic=message.topic, partition=message.partition, offset=message.offset,
                     error=f"{type(error).__name__}: {error}")  # fmt: skip


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    try:
        await consumer.commit(offsets)
    except KafkaError as error:
        # After a long stall (database outage, rebuild) the group may have moved on: the batch comes
        # back to whoever owns the partitions now, and is deduplicated there. Never a reason to die.
        log.warning("commit_failed", error=f"{type(error).__name__}: {error}")


class Progress:
    """Up to when each partition's reports are applied, proven by probes: the end offset the broker gives,
    stamped with the time taken before asking, so every report acknowledged before that time lies below it.
    Once the consumer's position (applied, since positions move only through batches already written)
    reaches a probe's end, the probe's time is marked. Never the time a fetch answer was processed: an
    answer that waited through a stall says nothing about what was acknowledged during it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._probes: dict[TopicPartition, tuple[int, datetime]] = {}

    async def mark(self, pool: asyncpg.Pool, consumer: AIOKafkaConsumer) -> None:
        positions: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            try:
                positions[tp] = await consumer.position(tp)
            except KafkaError:
                continue  # revoked meanwhile
        self._probes = {tp: probe for tp, probe in self._probes.items() if tp in positions}
        await self._probe(consumer, [tp for tp in positions if tp not in self._probes])
        reached = [(tp, at) for tp, (end, at) in self._probes.items() if positions[tp] >= end]
        for tp, _ in reached:
            del self._probes[tp]  # the next mark probes it afresh
        try:
            await liveness.mark_progress(pool, [(tp.topic, tp.partition, at) for tp, at in reached])
        except Exception as error:  # best effort: a missed mark only delays reaping; it must never stop projection
            log.warning("progress_mark_failed", error=f"{type(error).__name__}: {error}")

    async def _probe(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        asked_at = self._clock()
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(partitions), PROBE_TIMEOUT_S)
        except (KafkaError, TimeoutError) as error:
            log.warning("progress_probe_failed", error=f"{type(error).__name__}: {error}")
            return
        self._probes.update({tp: (end, asked_at) for tp, end in ends.items()})
