"""A JSON array streamed in batches: complete when all went well, visibly truncated when it did not."""

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.api.problems import problem_middleware
from services.api.render import json_array_stream


async def batches(*parts: list[object], fail_after: int | None = None) -> AsyncIterator[list[object]]:
    for index, part in enumerate(parts):
        if index == fail_after:
            raise ConnectionResetError("the database went away")
        yield part
    if fail_after == len(parts):
        raise ConnectionResetError("the database went away")


async def serve(make: Callable[[], AsyncIterator[list[object]]]) -> TestServer:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await json_array_stream(request, make())

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/items", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def fetch(make: Callable[[], AsyncIterator[list[object]]]) -> tuple[int, str, bytes]:
    server = await serve(make)
    try:
        async with aiohttp.ClientSession() as session, session.get(server.make_url("/items")) as response:
            return response.status, response.content_type, await response.read()
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [((), b"[]"), (([],), b"[]"), (([1, 2], [], [{"a": "b"}]), b'[1, 2,{"a": "b"}]'), (([1], [2]), b"[1,2]")],
)
async def test_batches_make_one_json_array(parts, expected):
    status, content_type, body = await fetch(lambda: batches(*parts))
    assert (status, content_type, body) == (200, "application/json", expected)


async def test_a_failure_before_the_first_batch_is_an_ordinary_problem_response():
    status, content_type, _ = await fetch(lambda: batches([1], fail_after=0))
    assert (status, content_type) == (503, "application/problem+json")


async def test_a_failure_mid_stream_drops_the_connection_instead_of_closing_the_array():
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(lambda: batches([1, 2], [3], fail_after=1))
