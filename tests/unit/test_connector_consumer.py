"""The connector's consumer loop against a fake consumer: backpressure, cancels, rebalances, shutdown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.connector.executor import Phase, RunHandle
from services.connector.service import ConnectorService
from shared.events import CancelRunCommand, StartRunCommand, StartRunPayload
from tests.support import eventually

TP0, TP1 = TopicPartition("requests", 0), TopicPartition("requests", 1)


class FakeConsumer:
    """Hands out queued messages like aiokafka's getmany, honouring pause/resume; records commits."""

    def __init__(self, *messages: tuple[TopicPartition, bytes]) -> None:
        self.queue = [(tp, SimpleNamespace(offset=i, value=v)) for i, (tp, v) in enumerate(messages)]
        self.assigned = {tp for tp, _ in messages}
        self.paused_tps: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.polls = 0
        self.listener: Any = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        batch: dict[TopicPartition, list[Any]] = {}
        for tp, message in list(self.queue):
            if tp in self.paused_tps or tp not in self.assigned or sum(map(len, batch.values())) >= max_records:
                continue
            self.queue.remove((tp, message))
            batch.setdefault(tp, []).append(message)
        await asyncio.sleep(0.01)
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def committed(self, tp: TopicPartition) -> int | None:
        return next((c[tp] for c in reversed(self.commits) if tp in c), None)


class Cancellations:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self.queue.get()


class GatedExecutor:
    """Like RunExecutor: loads the run (gate 'loaded'), checks for a cancel, claims, then runs (gate 'done')."""

    def __init__(self) -> None:
        self.gates: dict[tuple[uuid.UUID, str], asyncio.Event] = {}
        self.started: list[uuid.UUID] = []
        self.handles: dict[uuid.UUID, RunHandle] = {}

    def gate(self, run_id: uuid.UUID, name: str) -> asyncio.Event:
        return self.gates.setdefault((run_id, name), asyncio.Event())

    async def execute(self, handle: RunHandle) -> None:
        self.handles[handle.run_id] = handle
        await self.gate(handle.run_id, "loaded").wait()
        if handle.user_cancelled:
            return
        handle.phase = Phase.RUNNING
        self.started.append(handle.run_id)
        await self.gate(handle.run_id, "done").wait()


def start(run_id: uuid.UUID) -> bytes:
    return StartRunCommand(integration_id=uuid.uuid4(), integration_external_id="x", run_id=run_id,
                           payload=StartRunPayload(source="postgres")).to_bytes()  # fmt: skip


def runs(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def service(
    consumer: FakeConsumer, executor: GatedExecutor, slots: int = 1, grace: float = 5.0, cancels: Any = None
) -> ConnectorService:
    return ConnectorService(consumer, cancels or Cancellations(), executor, slots, grace)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool]) -> None:
    async def probe() -> bool:
        return condition()

    await eventually(probe, timeout=5)


def open_all(executor: GatedExecutor, run_id: uuid.UUID) -> None:
    executor.gate(run_id, "loaded").set()
    executor.gate(run_id, "done").set()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_at_capacity_partitions_are_paused_and_polling_goes_on():
    ids = runs(6)
    consumer, executor = FakeConsumer(*((TP0, start(r)) for r in ids)), GatedExecutor()
    task = asyncio.create_task(service(consumer, executor, slots=1).run())  # holds at most 4 requests
    try:
        await until(lambda: TP0 in consumer.paused_tps)
        polls = consumer.polls
        await until(lambda: consumer.polls > polls + 5)  # never blocks
        assert len(consumer.queue) == 2  # not fetched while paused
        for run_id in ids:
            open_all(executor, run_id)
        await until(lambda: consumer.committed(TP0) == 6)
        assert TP0 not in consumer.paused_tps
    finally:
        await stop(task)


async def test_a_cancel_for_a_run_that_has_not_started_does_not_freeze_the_commit_point():
    first, second = runs(2)
    consumer, executor, cancels = (
        FakeConsumer((TP0, start(first)), (TP0, start(second))),
        GatedExecutor(),
        Cancellations(),
    )
    task = asyncio.create_task(service(consumer, executor, slots=2, cancels=cancels).run())
    try:
        open_all(executor, first)
        await until(lambda: second in executor.handles)
        # The cancel arrives while the second run is still being loaded, before anything was claimed.
        cancel = CancelRunCommand(integration_id=uuid.uuid4(), integration_external_id="x", run_id=second)
        cancels.queue.put_nowait(SimpleNamespace(offset=0, value=cancel.to_bytes()))
        await until(lambda: executor.handles[second].user_cancelled)
        executor.gate(second, "loaded").set()
        await until(lambda: consumer.committed(TP0) == 2)
        assert executor.started == [first]
    finally:
        await stop(task)


async def test_a_revoked_partition_drops_unclaimed_work_and_its_running_run_commits_nothing():
    running, waiting, other = runs(3)
    consumer = FakeConsumer((TP0, start(running)), (TP0, start(waiting)), (TP1, start(other)))
    executor = GatedExecutor()
    task = asyncio.create_task(service(consumer, executor, slots=1).run())
    try:
        executor.gate(running, "loaded").set()
        await until(lambda: executor.started == [running])
        consumer.assigned.discard(TP0)
        await consumer.listener.on_partitions_revoked({TP0})
        commits_at_revoke = len(consumer.commits)
        open_all(executor, running)  # it keeps running here after the revoke, then ends
        open_all(executor, waiting)
        open_all(executor, other)
        await until(lambda: consumer.committed(TP1) == 3)
        assert executor.started == [running, other]  # the waiting request is left to the partition's new owner
        assert all(TP0 not in c for c in consumer.commits[commits_at_revoke:])
    finally:
        await stop(task)


async def test_shutdown_lets_running_runs_finish_and_leaves_unclaimed_requests_uncommitted():
    running, waiting = runs(2)
    consumer, executor = FakeConsumer((TP0, start(running)), (TP0, start(waiting))), GatedExecutor()
    task = asyncio.create_task(service(consumer, executor, slots=1, grace=5).run())
    executor.gate(running, "loaded").set()
    await until(lambda: executor.started == [running])
    task.cancel()  # SIGTERM
    await asyncio.sleep(0.1)
    assert not task.done()  # draining: the running run gets its grace period
    executor.gate(running, "done").set()
    await asyncio.gather(task, return_exceptions=True)
    assert consumer.committed(TP0) == 1 and executor.started == [running]


class DyingCancellations(Cancellations):
    async def __anext__(self) -> Any:
        raise ConnectionError("the cancellations consumer broke")


async def test_a_dead_cancellation_listener_takes_the_connector_down():
    from shared.process import BackgroundTaskDied

    consumer = FakeConsumer((TP0, start(uuid.uuid4())))
    connector = service(consumer, GatedExecutor(), cancels=DyingCancellations())
    with pytest.raises(BackgroundTaskDied, match="cancellations"):
        await asyncio.wait_for(connector.run(), timeout=5)


async def test_a_cancel_reaches_a_running_run_whose_request_came_back_after_a_rebalance():
    run_id = runs(1)[0]
    message = start(run_id)
    consumer, executor, cancels = FakeConsumer((TP0, message)), GatedExecutor(), Cancellations()
    task = asyncio.create_task(service(consumer, executor, slots=2, cancels=cancels).run())
    try:
        executor.gate(run_id, "loaded").set()
        await until(lambda: executor.started == [run_id])
        running = executor.handles[run_id]
        await consumer.listener.on_partitions_revoked({TP0})
        consumer.queue.append((TP0, SimpleNamespace(offset=0, value=message)))  # assigned back: delivered again
        await until(lambda: not consumer.queue)
        cancel = CancelRunCommand(integration_id=uuid.uuid4(), integration_external_id="x", run_id=run_id)
        cancels.queue.put_nowait(SimpleNamespace(offset=0, value=cancel.to_bytes()))
        await until(lambda: running.user_cancelled)
    finally:
        open_all(executor, run_id)
        await stop(task)
