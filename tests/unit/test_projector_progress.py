"""Marking projection progress is best effort: no database failure may take the projector down."""

import asyncio
from types import SimpleNamespace

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.projector.service import _mark_progress

TP = TopicPartition("reports", 0)


class CaughtUpConsumer:
    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def highwater(self, tp: TopicPartition) -> int:
        return 10

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return 1_795_000_000_000

    async def position(self, tp: TopicPartition) -> int:
        return 10


class BrokenPool:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def execute(self, *args: object) -> str:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionResetError(),
    ],
)
def test_a_failed_progress_mark_is_logged_not_raised(error):
    pool = BrokenPool(error)
    asyncio.run(_mark_progress(pool, CaughtUpConsumer()))  # type: ignore[arg-type]
    assert pool.calls == 1


class OneBatchConsumer:
    """Hands out one batch, then nothing; records commits."""

    def __init__(self) -> None:
        self.batches = [{TP: [SimpleNamespace(offset=0, value=b"{}")]}]
        self.commits: list[object] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[object]]:
        await asyncio.sleep(0.01)
        return self.batches.pop() if self.batches else {}

    async def commit(self, offsets: object) -> None:
        self.commits.append(offsets)


def test_progress_is_marked_only_after_the_batch_is_written(monkeypatch):
    """A mark says: everything the broker acknowledged before it is in the database. So never before the write."""
    from services.projector import service

    steps: list[str] = []
    marked_after_write = asyncio.Event()

    async def apply(pool: object, received: object, clock: object) -> None:
        steps.append("apply started")
        await asyncio.sleep(0.2)  # a slow write (or a paused process) with the batch still unwritten
        steps.append("apply written")

    async def mark(pool: object, consumer: object) -> None:
        steps.append("mark")
        if "apply written" in steps:
            marked_after_write.set()

    monkeypatch.setattr(service, "_apply_until_done", apply)
    monkeypatch.setattr(service, "_mark_progress", mark)

    async def scenario() -> None:
        task = asyncio.create_task(service.run_projection(None, OneBatchConsumer()))  # type: ignore[arg-type]
        await marked_after_write.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), timeout=5))
    assert steps.index("mark") > steps.index("apply written"), steps
