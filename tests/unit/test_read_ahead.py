"""Reading a source ahead of its consumer: order, bounds, errors, and the source's clean-up on every way out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from services.connector.read_ahead import read_ahead


class Source:
    """An async generator of 0..n-1 that records how far it got and whether its clean-up ran."""

    def __init__(self, n: int, fail_at: int | None = None, pause: asyncio.Event | None = None) -> None:
        self.n, self.fail_at, self.pause = n, fail_at, pause
        self.produced = 0
        self.closed = False

    async def items(self) -> AsyncGenerator[int, None]:
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise RuntimeError(f"source failed at {i}")
                if self.pause is not None and i == 1:
                    await self.pause.wait()  # a query in flight
                self.produced += 1
                yield i
        finally:
            self.closed = True


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_consumer_gets_every_item_in_order_and_the_source_reads_at_most_depth_ahead() -> None:
    source = Source(10)
    async with read_ahead(source.items(), depth=2, stop_timeout_s=5) as items:
        await settle()  # the consumer has taken nothing yet: the reader filled the queue and waits
        assert source.produced == 3  # two queued, the third waiting for room
        got = [item async for item in items]
    assert got == list(range(10))
    assert source.closed


async def test_the_source_works_while_the_consumer_does() -> None:
    source = Source(3)
    async with read_ahead(source.items(), depth=1, stop_timeout_s=5) as items:
        first = await anext(items)
        await settle()  # the consumer is busy with the first item: the reader already has the next one
        assert (first, source.produced) == (0, 3)
        assert [item async for item in items] == [1, 2]


async def test_an_error_of_the_source_reaches_the_consumer_after_the_items_read_before_it() -> None:
    source = Source(10, fail_at=3)
    got: list[int] = []
    with pytest.raises(RuntimeError, match="source failed at 3"):
        async with read_ahead(source.items(), depth=2, stop_timeout_s=5) as items:
            async for item in items:
                got.append(item)
    assert got == [0, 1, 2]
    assert source.closed


async def test_a_consumer_that_stops_early_stops_the_reader_and_closes_the_source() -> None:
    source = Source(1000)
    with pytest.raises(ValueError, match="consumer failed"):
        async with read_ahead(source.items(), depth=2, stop_timeout_s=5) as items:
            async for item in items:
                if item == 5:
                    raise ValueError("consumer failed")
    assert source.closed  # closed by the time the context is left: a cursor or transaction is not left open
    produced = source.produced
    await settle()
    assert source.produced == produced <= 8  # nothing reads on after


async def test_a_cancelled_consumer_cancels_a_read_in_flight_and_the_source_cleans_up() -> None:
    never = asyncio.Event()
    source = Source(10, pause=never)

    async def consume() -> list[int]:
        async with read_ahead(source.items(), depth=2, stop_timeout_s=5) as items:
            return [item async for item in items]

    consumer = asyncio.create_task(consume())
    await settle()  # the reader waits inside the source (a query that never answers); the consumer for an item
    assert source.produced == 1 and not source.closed
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert source.closed
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "read-ahead"]


async def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError):
        async with read_ahead(Source(1).items(), depth=0, stop_timeout_s=5):
            pass


async def test_a_source_that_holds_on_through_the_cancel_is_let_go_and_closed_once_it_lets_go() -> None:
    released, closed = asyncio.Event(), asyncio.Event()

    async def holds_on() -> AsyncGenerator[int, None]:
        try:
            yield 0
            while not released.is_set():  # a driver finishing its network read first
                with contextlib.suppress(asyncio.CancelledError):
                    await released.wait()
            for i in range(1, 10):
                yield i  # read after it was let go: never handed over, never waits for a consumer
        finally:
            closed.set()

    loop = asyncio.get_running_loop()
    began = loop.time()
    async with read_ahead(holds_on(), depth=1, stop_timeout_s=0.2) as items:
        assert await anext(items) == 0
    assert loop.time() - began < 1.0 and not closed.is_set()  # let go, still holding on
    released.set()  # what closing the source at its server does
    await asyncio.wait_for(closed.wait(), timeout=1.0)
