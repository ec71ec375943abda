"""Reading a source ahead of the work done with what it read.

A crawl alternates between two servers: the source, for the next batch of its catalog, and the store, for the
fingerprints of the batch just read (and Kafka, for the changes). Done in turn, each waits for the other; with the
source read in a task of its own, a bounded number of batches ahead, both work at once. Memory stays bounded: at
most `depth` batches wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger()


class _End:
    """The source ended: nothing more will come."""


@asynccontextmanager
async def read_ahead(source: AsyncIterator[T], depth: int, stop_timeout_s: float) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate `source` in a task of its own, at most `depth` items ahead of the consumer, which gets the items in
    order and then the source's exception, if it raised one. Leaving the context (whether the items ran out, the
    consumer raised or it was cancelled) stops the reading task and closes `source`, so its own clean-up (a cursor,
    a transaction) has run when this returns; unless the source holds on to a call through the cancellation for
    more than `stop_timeout_s` (a driver finishing a network read): then it is let go, to end once its caller
    closes the source at its server, and nothing it reads after that is handed over."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    queue: asyncio.Queue[T | _End | Exception] = asyncio.Queue(depth)
    stopped = False  # the consumer left: nothing is put any more (no one would take it)

    async def produce() -> None:
        outcome: _End | Exception = _End()
        try:
            async for item in source:
                if stopped:  # it was let go, and has let go of its call since: nothing more is read
                    break
                await queue.put(item)
        except Exception as error:  # handed over: the consumer raises it after the items read before it
            outcome = error
        if not stopped:
            await queue.put(outcome)
        elif isinstance(source, AsyncGenerator):
            await source.aclose()

    async def consume() -> AsyncIterator[T]:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, Exception):
                raise item
            yield item

    reader = asyncio.create_task(produce(), name="read-ahead")
    try:
        yield consume()
    finally:
        stopped = True
        reader.cancel()
        # Its cancellation, not ours: a cancelled consumer still waits for the source, but only so long.
        done, _ = await asyncio.wait([reader], timeout=stop_timeout_s)
        if not done:
            log.warning("source_read_let_go", timeout_s=stop_timeout_s)
            reader.add_done_callback(_retrieve)
        elif isinstance(source, AsyncGenerator):  # it may have stopped between two items: its clean-up runs now
            await source.aclose()


def _retrieve(reader: asyncio.Task[None]) -> None:
    """The outcome of a read that was let go: logged, never left for asyncio to report as unretrieved."""
    if not reader.cancelled() and reader.exception() is not None:
        log.info("source_read_ended_after_let_go", error=f"{type(reader.exception()).__name__}")
