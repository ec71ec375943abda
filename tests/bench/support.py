"""What both benchmarks share: the services as processes for the length of a benchmark, and timing helpers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "scheduler", "connector", "projector", "relay")


@asynccontextmanager
async def running_stack(env: dict[str, str], url: str) -> AsyncIterator[None]:
    """Migrate, start the services as processes (logs in a temp dir), wait for the API; stop them after."""
    processes = await asyncio.to_thread(_start, env)
    try:
        await _wait_api(url)
        yield
    finally:
        await asyncio.to_thread(_stop, processes)


def _start(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    subprocess.run([sys.executable, "-m", "services.manage", "migrate"], cwd=ROOT, env=env, check=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    env = {"OPS_PORT": "0"} | env  # ephemeral ops ports: never those of a `make run` on the same machine
    return [
        subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                         stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
        for name in SERVICES
    ]  # fmt: skip


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=20)


async def _wait_api(url: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("api did not start")


async def run_ended(db: asyncpg.Connection, run_id: uuid.UUID) -> asyncpg.Record:
    """The run's row once it is SUCCESS, FAILED or CANCELLED (polled every 10 ms)."""
    while True:
        row = await db.fetchrow("SELECT * FROM runs WHERE id = $1", run_id)
        if row and row["status"] in ("SUCCESS", "FAILED", "CANCELLED"):
            return row
        await asyncio.sleep(0.01)


def samples(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"
