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

T = TypeVar("T")


class _End:
    """The source ended: nothing more will come."""


@asynccontextmanager
async def read_ahead(source: AsyncIterator[T], depth: int) -> AsyncIterator[AsyncIterator[T]]:
    """Iterate `source` in a task of its own, at most `depth` items ahead of the consumer, which gets the items in
    order and then the source's exception, if it raised one. Leaving the context (whether the items ran out, the
    consumer raised or it was cancelled) stops the reading task and closes `source`, so its own clean-up (a cursor,
    a transaction) has run when this returns."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    queue: asyncio.Queue[T | _End | Exception] = asyncio.Queue(depth)

    async def produce() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as error:  # handed over: the consumer raises it after the items read before it
            await queue.put(error)
        else:
            await queue.put(_End())

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
        reader.cancel()
        await asyncio.wait([reader])  # its cancellation, not ours: a cancelled consumer still waits for the source
        if isinstance(source, AsyncGenerator):  # it may have stopped between two items: its clean-up runs now
            await source.aclose()
