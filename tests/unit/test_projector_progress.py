"""Marking projection progress is best effort: no database failure may take the projector down."""

import asyncio

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
