"""Marking projection progress is best effort: no database failure may take the projector down."""

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import asyncpg
import pytest
from aiokafka import TopicPartition

from services.projector.handlers import BatchOutcome, Received, parse
from services.projector.service import Progress
from shared.events import AssetCountsPayload, FinishedPayload, RunFailed, RunOwner

TP = TopicPartition("reports", 0)


class CaughtUpConsumer:
    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 10)

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
    asyncio.run(Progress(lambda: datetime.now(UTC)).mark(pool, CaughtUpConsumer()))  # type: ignore[arg-type]
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

    async def mark(self: object, pool: object, consumer: object) -> None:
        steps.append("mark")
        if "apply written" in steps:
            marked_after_write.set()

    monkeypatch.setattr(service, "_apply_until_done", apply)
    monkeypatch.setattr(service.Progress, "mark", mark)

    async def scenario() -> None:
        task = asyncio.create_task(service.run_projection(None, OneBatchConsumer()))  # type: ignore[arg-type]
        await marked_after_write.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(asyncio.wait_for(scenario(), timeout=5))
    assert steps.index("mark") > steps.index("apply written"), steps


class RecordingPool:
    """Enough of asyncpg's pool for the projector's last resort: records the dead letters it writes."""

    def __init__(self) -> None:
        self.letters: list[tuple[object, ...]] = []

    def acquire(self) -> "RecordingPool":
        return self

    async def __aenter__(self) -> "RecordingPool":
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def executemany(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        self.letters.extend(rows)


def test_a_batch_that_keeps_failing_is_split_until_the_one_bad_message_is_set_apart(monkeypatch):
    from services.projector import service
    from services.projector.handlers import Received

    applied: list[int] = []

    async def apply_batch(conn: object, batch: object, now: object) -> object:
        offsets = [m.offset for ms in batch.events.values() for _, m in ms] + [d.offset for d in batch.dead]
        if 2 in offsets:
            raise ValueError("a bug that meets this message's data")  # not infrastructure: retrying never helps
        applied.extend(offsets)
        return BatchOutcome()

    monkeypatch.setattr(service, "apply_batch", apply_batch)
    monkeypatch.setattr(service, "GIVE_UP_AFTER", 1)  # no backoff sleeps in a unit test
    messages = [Received("reports", 0, offset, b"not json") for offset in range(5)]
    pool = RecordingPool()
    asyncio.run(asyncio.wait_for(service._apply_until_done(pool, messages, lambda: None), timeout=5))  # type: ignore[arg-type]
    assert sorted(applied) == [0, 1, 3, 4]
    assert [row[2] for row in pool.letters] == [2]  # (topic, partition, offset, ...): only the bad one


def test_a_connector_report_claiming_the_reaper_ended_its_run_is_set_aside() -> None:
    # Only the reaper ends a run as reaped (webhooks announce it as run.reaped); a connector saying so is off-contract.
    owner = RunOwner(connector_id="c-1", attempt=1)
    about = {"integration_id": uuid.uuid4(), "integration_external_id": "shop", "run_id": uuid.uuid4(), "owner": owner}
    honest = RunFailed(**about, payload=FinishedPayload(counts=AssetCountsPayload(), message="source gone"))
    lying = RunFailed(**about, payload=FinishedPayload(counts=AssetCountsPayload(), message="x", reaped=True))
    batch = parse([Received("reports", 0, offset, report.model_dump_json().encode())
                   for offset, report in enumerate((honest, lying))])  # fmt: skip
    assert [dead.reason for dead in batch.dead] == ["a connector report claiming the reaper ended the run"]
    assert [event for event, _ in batch.events[honest.run_id]] == [honest]
