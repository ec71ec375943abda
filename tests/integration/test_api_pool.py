"""The API's database pool is open in full before the first request and stays so."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer

from services.api.app import create_app
from services.api.context import DEPS
from services.api.settings import ApiSettings

pytestmark = pytest.mark.integration


async def test_the_api_opens_every_pooled_connection_at_start(database: str, kafka_bootstrap: str) -> None:
    settings = ApiSettings(APP_ENV="test", DATABASE_URL=database, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                           API_DB_POOL_SIZE=4)  # fmt: skip
    app = create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        pool = app[DEPS].runtime.pool
        assert pool.get_size() == 4  # (one of them may already hold the run streams' LISTEN)
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        assert pool.get_size() == 4
    finally:
        await server.close()
