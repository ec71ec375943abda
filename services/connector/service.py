"""The connector's consumer loops: run requests (consumer group) and cancellations (every instance).

Runs of different integrations execute concurrently (bounded); one integration's messages are
handled in order. A request's offset is committed only after its run's outcome reached Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.connector.executor import RunExecutor, RunHandle
from services.connector.offsets import OffsetTracker
from shared import topics
from shared.events import CancelRun, Envelope, EventType

log = structlog.get_logger()


class KafkaReporter:
    """Sends events to CONNECTOR_REPORTS keyed by integration, so one integration's events stay ordered."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._pending: list[asyncio.Future[Any]] = []

    async def emit(self, event: Envelope, encoded: bytes | None = None) -> None:
        future = await self._producer.send(
            topics.CONNECTOR_REPORTS, encoded or event.to_bytes(), key=str(event.integration_id).encode()
        )
        self._pending.append(future)
        if len(self._pending) >= 256:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: ConnectorService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._service.commit()
        self._service.tracker.forget(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


class ConnectorService:
    def __init__(
        self,
        requests: AIOKafkaConsumer,
        cancellations: AIOKafkaConsumer,
        executor: RunExecutor,
        max_concurrent_runs: int,
    ) -> None:
        self._requests = requests
        self._cancellations = cancellations
        self._executor = executor
        self._slots = asyncio.Semaphore(max_concurrent_runs)
        self._max_inflight = max_concurrent_runs * 4
        self._inflight_slots = asyncio.Semaphore(self._max_inflight)  # backpressure on fetching
        self.tracker = OffsetTracker()
        self._active: dict[uuid.UUID, RunHandle] = {}
        self._tails: dict[str, asyncio.Task[None]] = {}  # last task per integration key: keeps order
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        self._requests.subscribe([topics.RUN_REQUESTS], listener=_Rebalance(self))
        listener = asyncio.create_task(self._listen_for_cancellations(), name="cancellations")
        try:
            await self._consume_requests()
        finally:
            listener.cancel()
            await self.shutdown()

    async def _consume_requests(self) -> None:
        while True:
            batches = await self._requests.getmany(timeout_ms=500, max_records=self._max_inflight)
            for tp, messages in batches.items():
                for message in messages:
                    await self._inflight_slots.acquire()
                    self.tracker.started(tp, message.offset)
                    self._schedule(tp, message.offset, message.key, message.value)
            await self.commit()

    def _schedule(self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None) -> None:
        ordering_key = (key or b"").decode()
        previous = self._tails.get(ordering_key)
        task = asyncio.create_task(self._handle(tp, offset, value, previous))
        self._tails[ordering_key] = task
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if self._tails.get(ordering_key) is t:
                del self._tails[ordering_key]

        task.add_done_callback(done)
        task.add_done_callback(lambda _: self._inflight_slots.release())

    async def _handle(
        self, tp: TopicPartition, offset: int, value: bytes | None, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        try:
            envelope = Envelope.from_bytes(value or b"")
        except ValueError:
            log.error("run_request_unreadable", partition=tp.partition, offset=offset)
            self.tracker.finished(tp, offset)
            return
        if envelope.type != EventType.START_RUN:
            self.tracker.finished(tp, offset)
            return
        handle = RunHandle(envelope.run_id)
        async with self._slots:
            handle.task = asyncio.current_task()
            self._active[envelope.run_id] = handle
            try:
                await self._executor.execute(handle)
            except Exception:
                # E.g. Kafka unreachable while reporting the outcome: the run stays RUNNING without
                # heartbeats and the reaper ends it, so this request is done with either way.
                log.exception("run_execution_error", run_id=str(envelope.run_id))
            finally:
                self._active.pop(envelope.run_id, None)
        self.tracker.finished(tp, offset)

    async def _listen_for_cancellations(self) -> None:
        async for message in self._cancellations:
            try:
                envelope = Envelope.from_bytes(message.value or b"")
            except ValueError:
                log.error("cancellation_unreadable", offset=message.offset)
                continue
            handle = self._active.get(envelope.run_id)
            if envelope.type == EventType.CANCEL_RUN and handle is not None:
                log.info("run_cancel_received", run_id=str(envelope.run_id))
                handle.cancel(CancelRun.model_validate(envelope.payload).requested_by)

    async def commit(self) -> None:
        offsets = self.tracker.to_commit()
        if not offsets:
            return
        try:
            await self._requests.commit(offsets)
            self.tracker.committed(offsets)
        except (CommitFailedError, KafkaError) as error:
            log.warning("commit_failed", error=str(error))

    async def shutdown(self) -> None:
        """End in-flight runs as FAILED (never leave them RUNNING), then commit what finished."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.commit()
