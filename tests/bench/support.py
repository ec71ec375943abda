"""What the benchmarks share: the services as processes (and their peak memory), the API calls they make, waiting
for runs, percentiles, and the figures the summary of `make bench` lists next to their targets."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "scheduler", "connector", "projector", "relay")
KEY = "bench-key-" + uuid.uuid4().hex
HEADERS = {"x-api-key": KEY}
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
# A wrong result fails loudly, and so does a run that never ends (the services' own reaper acts after 10 minutes).
RUN_DEADLINE_S = float(os.environ.get("BENCH_RUN_DEADLINE_SECONDS", "1800"))


@dataclass
class Stack:
    """The services of one scenario; `peak_rss_mb` is filled from /proc just before they are stopped."""

    url: str
    processes: dict[str, subprocess.Popen[bytes]]
    logs: Path
    peak_rss_mb: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    # Another checkout's bench may run on the same machine: never a fixed port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def running_stack(dsn: str) -> AsyncIterator[Stack]:
    """Migrate `dsn`, start the services as processes on fresh ports, wait for the API; stop them after.
    Fails if a service exited meanwhile (nothing restarts it here, so its figures would be wrong)."""
    port = free_port()
    env = os.environ | {"DATABASE_URL": dsn, "API_PORT": str(port), "BOOTSTRAP_API_KEY": KEY, "APP_ENV": "test",
                        "LOG_LEVEL": "WARNING", "OPS_PORT": "0"}  # fmt: skip
    stack = await asyncio.to_thread(_start, env, f"http://127.0.0.1:{port}")
    try:
        await _wait_api(stack)
        yield stack
        dead = {name: p.returncode for name, p in stack.processes.items() if p.poll() is not None}
        assert not dead, f"services exited during the benchmark: {dead} (logs in {stack.logs})"
        stack.peak_rss_mb = {name: peak_rss_mb(p.pid) for name, p in stack.processes.items()}
    finally:
        await asyncio.to_thread(_stop, stack.processes)


def _start(env: dict[str, str], url: str) -> Stack:
    subprocess.run([sys.executable, "-m", "services.manage", "migrate"], cwd=ROOT, env=env, check=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    processes = {
        name: subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env,
                               stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
        for name in SERVICES
    }  # fmt: skip
    return Stack(url, processes, logs)


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        process.wait(timeout=30)


async def _wait_api(stack: Stack) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(stack.url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the api did not start (logs in {stack.logs})")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


class Api:
    """The calls of the Entropy dialect the benchmarks make, each failing loudly on an unexpected answer."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def create_integration(
        self, external_id: str, source: str, configuration: dict[str, Any], credentials: dict[str, Any]
    ) -> None:
        body = {"externalId": external_id, "name": external_id, "source": source, "configuration": configuration,
                "credentials": credentials}  # fmt: skip
        async with self.session.post(self.url + "/api/integrations", json=body, headers=HEADERS) as response:
            assert response.status == 201, await response.text()

    async def create_postgres_integration(self, external_id: str, source_dsn: str, schemas: Sequence[str]) -> None:
        source = urlparse(source_dsn)
        configuration = {"host": source.hostname, "port": source.port, "database": source.path.lstrip("/"),
                         "username": source.username, "includeSchemas": list(schemas),
                         "sslmode": "disable"}  # fmt: skip
        await self.create_integration(external_id, "postgres", configuration, {"password": source.password})

    async def trigger(self, external_id: str) -> uuid.UUID:
        async with self.session.post(f"{self.url}/api/integrations/{external_id}/run", headers=HEADERS) as response:
            assert response.status == 202, await response.text()
            return uuid.UUID((await response.json())["ingestionRunId"])

    async def cancel(self, external_id: str) -> None:
        async with self.session.post(f"{self.url}/api/integrations/{external_id}/cancel", headers=HEADERS) as response:
            assert response.status == 204, await response.text()


@dataclass(frozen=True)
class Ended:
    run: asyncpg.Record
    seen_at: float  # time.perf_counter() of the poll that saw it ended
    reaped: bool  # the terminal event says the reaper ended it


async def runs_ended(
    db: asyncpg.Connection, run_ids: Sequence[uuid.UUID], interval: float = 0.01
) -> dict[uuid.UUID, Ended]:
    """Every run's row once it is SUCCESS, FAILED or CANCELLED: one query per poll, however many runs."""
    ended: dict[uuid.UUID, Ended] = {}
    deadline = time.monotonic() + RUN_DEADLINE_S
    while len(ended) < len(run_ids):
        rows = await db.fetch(
            "SELECT r.*, coalesce((e.payload->>'reaped')::boolean, false) AS reaped FROM runs r "
            "LEFT JOIN LATERAL (SELECT payload FROM run_events WHERE run_id = r.id ORDER BY seq DESC LIMIT 1) e "
            "ON true WHERE r.id = ANY($1) AND r.status = ANY($2)",
            [i for i in run_ids if i not in ended], list(TERMINAL),
        )  # fmt: skip
        seen_at = time.perf_counter()
        for row in rows:
            ended[row["id"]] = Ended(row, seen_at, row["reaped"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(run_ids) - len(ended)} runs still active after {RUN_DEADLINE_S:g} s")
        if len(ended) < len(run_ids):
            await asyncio.sleep(interval)
    return ended


async def run_ended(db: asyncpg.Connection, run_id: uuid.UUID) -> asyncpg.Record:
    """The run's row once it is SUCCESS, FAILED or CANCELLED (polled every 10 ms)."""
    return (await runs_ended(db, [run_id]))[run_id].run


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share 0.99 = p99): a value that was measured, never an interpolation."""
    ordered = sorted(values)
    rank = math.ceil(round(share * len(ordered), 9))  # round: 0.07 * 100 is 7.000000000000001 in floats
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def samples(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


@dataclass(frozen=True)
class Figure:
    """One line of the summary: a measured figure and, where the issue sets one, its target and whether it is met."""

    scenario: str
    name: str
    value: str
    target: str = ""
    met: bool | None = None


def record(figure: Figure) -> None:
    """Keep a figure for the summary `python -m tests.bench` prints at the end (BENCH_SUMMARY names its file)."""
    path = os.environ.get("BENCH_SUMMARY")
    if path:
        with Path(path).open("a") as file:
            file.write(json.dumps(asdict(figure)) + "\n")


def read_figures(path: Path) -> list[Figure]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [Figure(**json.loads(line)) for line in lines]


def at_most(scenario: str, name: str, value: float, limit: float, unit: str, shown: str = "") -> Figure:
    """A figure whose target is an upper bound, recorded; `shown` adds context to the value (e.g. the seconds)."""
    figure = Figure(scenario, name, f"{value:.2f}{unit}" + (f" ({shown})" if shown else ""), f"<= {limit:g}{unit}",
                    value <= limit)  # fmt: skip
    record(figure)
    return figure


def verdict(met: bool | None) -> str:
    return "" if met is None else ("met" if met else "NOT met")
