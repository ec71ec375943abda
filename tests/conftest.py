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
# Every service process a test starts serves its ops port on an ephemeral port unless the test picks one:
# the per-service defaults would collide with `make run` and with other suites on the same machine.
os.environ.setdefault("OPS_PORT", "0")


def _docker_reachable() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False
    return True


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[tuple[str, str]]:
    """(postgres dsn, kafka bootstrap) of real servers: the ones `make test` started, else testcontainers."""
    dsn = os.environ.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    wanted = os.environ.get("TESTCONTAINERS") == "1" or (not (dsn and bootstrap) and _docker_reachable())
    if wanted:
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg, KafkaContainer().with_kraft() as kafka:
            yield pg.get_connection_url(), kafka.get_bootstrap_server()
        return
    if not dsn or not bootstrap:
        pytest.exit("No PostgreSQL/Kafka: run `make test` (it starts both), or set DATABASE_URL and "
                    "KAFKA_BOOTSTRAP_SERVERS, or make a Docker engine reachable for testcontainers", 2)  # fmt: skip
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
