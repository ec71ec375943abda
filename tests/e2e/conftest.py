"""The services as separate processes against the real broker and database, driven over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support import create_shop_database, eventually, recreate_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "scheduler", "connector", "projector", "relay")
ADMIN_KEY = "e2e-admin-key-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    url: str
    dsn: str
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ops_ports: dict[str, int] = field(default_factory=dict)  # each process's /livez, /readyz, /metrics

    def start(self, name: str, service: str | None = None, **env: str) -> None:
        """Start `services.<service or name>` as process `name` (a second connector: name differs, service not)."""
        log = open(self.log_dir / f"{name}.log", "ab")
        self.ops_ports[name] = free_port()
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service or name}"], cwd=ROOT,
            env=self.env | {"OPS_PORT": str(self.ops_ports[name])} | env, stdout=log, stderr=log,
        )  # fmt: skip

    def ops_url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ops_ports[name]}{path}"

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="session")
async def stack(infrastructure: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    dsn = await recreate_database(infrastructure[0], "ingestion_e2e")
    port = free_port()
    env = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": infrastructure[1],
        "API_PORT": str(port),
        "BOOTSTRAP_API_KEY": ADMIN_KEY,
        "HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "HEARTBEAT_TIMEOUT_SECONDS": "4",
        "SCHEDULER_TICK_SECONDS": "0.5",
        "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "1",
        "CONNECTION_TEST_TIMEOUT_SECONDS": "2",
        "LOG_FORMAT": "json",
    }
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.manage", "migrate", cwd=ROOT, env=env
    )
    assert await migrate.wait() == 0
    stack = Stack(url=f"http://127.0.0.1:{port}", dsn=dsn, env=env, log_dir=tmp_path_factory.mktemp("e2e-logs"))
    for name in SERVICES:
        stack.start(name)
    await wait_for_api(stack)
    yield stack
    for name in list(stack.processes):
        stack.stop(name)


@pytest.fixture(scope="session")
async def db(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.dsn)
    yield conn
    await conn.close()


class Client:
    """A thin HTTP client the way a user's script would be: status, headers, JSON."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str | None) -> None:
        self._session = session
        self._base = base
        self.key = key

    async def call(self, method: str, path: str, json: Any = None, data: Any = None,
                   key: str | None = None, bearer: bool = False) -> tuple[int, Any, Any]:  # fmt: skip
        """`bearer`: the key as `Authorization: Bearer` (Secoda's way), not `x-api-key`."""
        used = key or self.key
        headers = ({"Authorization": f"Bearer {used}"} if bearer else {"x-api-key": used}) if used else {}
        async with self._session.request(method, self._base + path, json=json, data=data, headers=headers) as r:
            body = await r.json(content_type=None) if r.content_length != 0 else None
            return r.status, body, r.headers

    async def wait_for_run(self, external_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            status, body, _ = await self.call("GET", f"/api/integrations/{external_id}/runs/latest")
            return body if status == 200 and body["status"] in statuses else None

        return await eventually(probe, timeout=timeout)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, stack.url, ADMIN_KEY)


@pytest.fixture(scope="session")
async def shop_dsn(stack: Stack) -> str:
    return await create_shop_database(stack.dsn, "source_shop_e2e")


@pytest.fixture
async def locked_view(shop_dsn: str) -> AsyncIterator[None]:
    """Hold an exclusive lock on a view of the source: the crawl blocks on it (a slow source)."""
    conn = await asyncpg.connect(shop_dsn)
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("LOCK TABLE sales.big_orders IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await conn.close()


def postgres_integration(dsn: str, external_id: str, **extra: Any) -> dict[str, Any]:
    from urllib.parse import urlparse

    url = urlparse(dsn)
    return {
        "externalId": external_id,
        "name": f"Source {external_id}",
        "source": "postgres",
        "configuration": {"host": url.hostname, "port": url.port, "database": url.path.lstrip("/"),
                          "username": url.username, "sslmode": "disable"},
        "credentials": {"password": url.password},
    } | extra  # fmt: skip


async def wait_for_api(stack: Stack) -> None:
    """Until the stack's API process answers /health (failing at once, with its log, if it exited)."""

    async def api_up() -> bool:
        if stack.processes["api"].poll() is not None:
            raise RuntimeError("the api exited:\n" + stack.log("api"))
        try:
            async with aiohttp.ClientSession() as session, session.get(stack.url + "/health") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(api_up, timeout=30)
