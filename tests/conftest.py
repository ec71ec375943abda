"""Session fixtures: the real PostgreSQL and Kafka the suite runs against.

`make test` starts a local broker and server and exports DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS.
Where a Docker engine is reachable, `TESTCONTAINERS=1 pytest` starts both with testcontainers instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from services.core.ingestion import Runtime
from shared.kafka import ensure_topics
from shared.postgres import create_pool, migrate
from tests.support import recreate_database

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "core" / "store" / "migrations"


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[tuple[str, str]]:
    """(postgres dsn, kafka bootstrap) of real servers."""
    if os.environ.get("TESTCONTAINERS") == "1":
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg, KafkaContainer("apache/kafka:4.1.1") as kafka:
            dsn = pg.get_connection_url().replace("postgresql+psycopg2", "postgresql")
            os.environ["DATABASE_URL"] = dsn
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka.get_bootstrap_server()
            yield dsn, kafka.get_bootstrap_server()
        return
    dsn = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not dsn or not bootstrap:
        pytest.exit("DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS must point at real servers: run `make test`", 2)
    yield dsn, bootstrap


@pytest.fixture(scope="session")
async def database(infrastructure: tuple[str, str]) -> str:
    """A fresh, migrated database for the integration tests; topics exist."""
    dsn = await recreate_database(infrastructure[0], "ingestion_it")
    await migrate(dsn, MIGRATIONS)
    await ensure_topics(infrastructure[1])
    return dsn


@pytest.fixture(scope="session")
def kafka_bootstrap(infrastructure: tuple[str, str]) -> str:
    return infrastructure[1]


@pytest.fixture(scope="session")
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, max_size=30)
    yield pool
    await pool.close()


@pytest.fixture
def runtime(pool: asyncpg.Pool) -> Runtime:
    return Runtime(pool=pool, clock=lambda: datetime.now(UTC), new_id=uuid.uuid4)
