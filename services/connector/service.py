"""The connector's consumer loops: run requests (consumer group) and cancellations (every instance).

Runs of different integrations execute concurrently (bounded); one integration's requests are handled
in order. The loop never stops polling: at capacity it pauses its partitions instead, so the group
never takes this instance for dead. A request's offset is committed once its run ended (or was found
to be someone else's). On a rebalance, work not yet claimed on revoked partitions is dropped (the new
owner redoes it); claimed runs keep executing here, fenced by their claim, and no longer move offsets.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.connector.executor import Phase, RunHandle
from services.connector.offsets import OffsetTracker
from shared import topics
from shared.events import CancelRunCommand, StartRunCommand, parse_command
from shared.process import Supervisor

log = structlog.get_logger()


class Executor(Protocol):
    """What the consumer loop needs of the run executor (services.connector.executor.RunExecutor)."""

    async def execute(self, handle: RunHandle) -> None: ...


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: ConnectorService) -> None:
        self._service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._service.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


@dataclass
class _Request:
    tp: TopicPartition
    offset: int
    generation: int
    handle: RunHandle


class ConnectorService:
    def __init__(
        self,
        requests: AIOKafkaConsumer,
        cancellations: AIOKafkaConsumer,
        executor: Executor,
        max_concurrent_runs: int,
        shutdown_grace_s: float = 10.0,
    ) -> None:
        self._requests = requests
        self._cancellations = cancellations
        self._executor = executor
        self._slots = asyncio.Semaphore(max_concurrent_runs)
        self._max_inflight = max_concurrent_runs * 4  # received requests held at once (running or waiting)
        self._grace_s = shutdown_grace_s
        self.tracker = OffsetTracker()
        self._inflight: dict[asyncio.Task[None], _Request] = {}
        # Every handle per run: a request redelivered after a rebalance gets a second one while the first runs.
        self._handles: dict[uuid.UUID, list[RunHandle]] = {}
        self._tails: dict[bytes, asyncio.Task[None]] = {}  # last task per integration key: keeps order

    @property
    def runs_in_flight(self) -> int:
        """Runs this instance executes now (being claimed or running), not the requests queued behind them."""
        return sum(1 for r in self._inflight.values() if r.handle.phase is not Phase.WAITING)

    async def run(self) -> None:
        self._requests.subscribe([topics.RUN_REQUESTS], listener=_Rebalance(self))
        # A dead cancellation listener takes the process down, loudly; it stays alive while runs drain.
        async with Supervisor() as supervisor:
            supervisor.start("cancellations", self._listen_for_cancellations())
            try:
                while True:
                    await self._poll_once()
            finally:
                await self._drain()
                await self.commit()

    async def _poll_once(self) -> None:
        capacity = self._max_inflight - len(self._inflight)
        paused = self._requests.paused()
        if capacity <= 0:
            self._requests.pause(*self._requests.assignment())
        elif paused:
            self._requests.resume(*paused)
        batches = await self._requests.getmany(timeout_ms=500, max_records=max(capacity, 1))
        for tp, messages in batches.items():
            for message in messages:
                self._receive(tp, message.offset, message.value)
        await self.commit()

    def _receive(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        generation = self.tracker.started(tp, offset)
        try:
            command = parse_command(value or b"")
        except ValidationError as error:
            log.error("run_request_unreadable", partition=tp.partition, offset=offset, errors=error.error_count())
            self.tracker.finished(tp, offset, generation)
            return
        if not isinstance(command, StartRunCommand):
            self.tracker.finished(tp, offset, generation)
            return
        handle = RunHandle(command.run_id)
        key = command.integration_id.bytes
        task = asyncio.create_task(self._execute(handle, self._tails.get(key)))
        handle.task = task
        request = _Request(tp, offset, generation, handle)
        self._inflight[task] = request
        self._handles.setdefault(command.run_id, []).append(handle)
        self._tails[key] = task

        def done(t: asyncio.Task[None]) -> None:
            del self._inflight[t]
            handles = self._handles[command.run_id]
            handles.remove(handle)
            if not handles:
                del self._handles[command.run_id]
            if self._tails.get(key) is t:
                del self._tails[key]
            # A request dropped before it was claimed (rebalance, shutdown) stays uncommitted for the next owner.
            if not (t.cancelled() and handle.phase is Phase.WAITING):
                self.tracker.finished(request.tp, request.offset, request.generation)

        task.add_done_callback(done)

    async def _execute(self, handle: RunHandle, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        async with self._slots:
            try:
                await self._executor.execute(handle)
            except Exception:
                # E.g. Kafka unreachable while reporting the outcome: the run stays RUNNING without
                # heartbeats and the reaper ends it, so this request is done with either way.
                log.exception("run_execution_error", run_id=str(handle.run_id))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.commit()  # what finished on them is still ours to commit
        self.tracker.forget(revoked)
        dropped = [task for task, r in self._inflight.items() if r.tp in revoked and r.handle.phase is Phase.WAITING]
        for task in dropped:
            task.cancel()
        log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked), dropped=len(dropped),
                 kept_running=sum(1 for r in self._inflight.values() if r.tp in revoked) - len(dropped))  # fmt: skip

    async def _listen_for_cancellations(self) -> None:
        async for message in self._cancellations:
            try:
                command = parse_command(message.value or b"")
            except ValidationError:
                log.error("cancellation_unreadable", offset=message.offset)
                continue
            if isinstance(command, CancelRunCommand) and command.run_id in self._handles:
                log.info("run_cancel_received", run_id=str(command.run_id))
                for handle in self._handles[command.run_id]:
                    handle.cancel(command.payload.requested_by)

    async def commit(self) -> None:
        offsets = self.tracker.to_commit()
        if not offsets:
            return
        try:
            await self._requests.commit(offsets)
            self.tracker.committed(offsets)
        except KafkaError as error:  # CommitFailedError after a rebalance, IllegalStateError, broker down
            log.warning("commit_failed", error=str(error))

    async def _drain(self) -> None:
        """Shutdown: drop unclaimed requests, let running runs finish within the grace period, then end
        the rest as FAILED (never leave them RUNNING)."""
        for task, request in list(self._inflight.items()):
            if request.handle.phase is Phase.WAITING:
                task.cancel()
        tasks = list(self._inflight)
        if not tasks:
            return
        running = sum(1 for r in self._inflight.values() if r.handle.phase is not Phase.WAITING)
        log.info("connector_draining", running=running, grace_s=self._grace_s)
        _, late = await asyncio.wait(tasks, timeout=self._grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
