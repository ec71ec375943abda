"""How every API response renders values that JSON lacks (one date format), and JSON arrays streamed in chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as the Entropy Data API writes its date-times."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)  # UUIDs


async def json_array_stream(request: web.Request, batches: AsyncIterator[Sequence[Any]]) -> web.StreamResponse:
    """Write one JSON array from batches as they come, so its size never has to fit in memory.

    The first batch is read before anything is sent: an error up to there is still an ordinary problem
    response. After that, an error leaves the array unclosed and the connection is dropped (see
    problem_middleware), so a client never mistakes a truncated list for a complete one.
    """
    batch: Sequence[Any] | None = await anext(batches, None)
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"[")
    separator = b""
    while batch is not None:
        if batch:
            items = json.dumps(list(batch), default=json_default)[1:-1]
            await response.write(separator + items.encode())
            separator = b","
        batch = await anext(batches, None)
    await response.write(b"]")
    await response.write_eof()
    return response
