"""`make run`'s process supervisor (infra/run_services.sh) against the test servers: a service killed with
SIGKILL comes back by itself, and `make stop` (run_services.sh stop) still stops everything."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import ROOT, SERVICES, free_port
from tests.support import eventually, recreate_database

pytestmark = pytest.mark.e2e


def pid_of(run_dir: Path, name: str) -> int | None:
    try:
        return int((run_dir / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None


def running(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_service_killed_with_sigkill_is_restarted_and_stop_still_stops_everything(infrastructure, tmp_path):
    dsn = await recreate_database(infrastructure[0], "ingestion_run_services")
    port = free_port()
    run_dir = tmp_path / "services"
    env = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": infrastructure[1],
        "API_PORT": str(port),
        "BOOTSTRAP_API_KEY": "run-services-key",
        "LOG_FORMAT": "json",
        "RUN_DIR": str(run_dir),
        "STOP_INFRA": "0",  # the test servers belong to the suite
    }
    migrate = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.manage", "migrate",
                                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    assert await migrate.wait() == 0
    output = tmp_path / "run_services.out"
    with output.open("w") as out:
        script = await asyncio.create_subprocess_exec("bash", "infra/run_services.sh", cwd=ROOT, env=env,
                                                      stdout=out, stderr=out)  # fmt: skip
    pids: dict[str, int | None] = {}
    try:

        async def api_healthy() -> bool:
            assert script.returncode is None, output.read_text()
            try:
                async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(api_healthy, timeout=90, interval=0.3)
        relay = pid_of(run_dir, "relay")
        assert relay is not None and running(relay)
        os.kill(relay, 9)

        async def restarted() -> int | None:
            pid = pid_of(run_dir, "relay")
            return pid if pid != relay and running(pid) else None

        new_relay = await eventually(restarted, timeout=60, interval=0.2)
        said = output.read_text()
        assert "[run] relay exited (code 137)" in said and "restarting it in 1s" in said
        assert '"event": "relay_started"' in said  # the tail of its log
        assert f"[run] relay restarted (pid {new_relay})" in said
        pids = {name: pid_of(run_dir, name) for name in SERVICES}
        assert all(running(pid) for pid in pids.values()), pids
        # The background services yield the CPU to the API (WORKER_NICENESS, 10 by default), the restarted one too
        # once it has started.
        niceness = {name: 0 if name == "api" else 10 for name in SERVICES}

        async def at_their_niceness() -> bool:
            return {name: os.getpriority(os.PRIO_PROCESS, pid) for name, pid in pids.items() if pid} == niceness

        await eventually(at_their_niceness, timeout=30, interval=0.2)
    finally:
        stop = await asyncio.create_subprocess_exec("bash", "infra/run_services.sh", "stop", cwd=ROOT, env=env,
                                                    stdout=subprocess.PIPE)  # fmt: skip
        stopped, _ = await asyncio.wait_for(stop.communicate(), timeout=120)
        try:
            await asyncio.wait_for(script.wait(), timeout=60)
        finally:
            if script.returncode is None:
                script.kill()
    assert stop.returncode == 0 and b"services stopped" in stopped
    assert script.returncode == 0 and "stopping..." in output.read_text()
    await eventually(lambda: _none_running(pids), timeout=10)
    assert "restarted" not in output.read_text().split("stopping...")[1]  # nothing came back while stopping


async def _none_running(pids: dict[str, int | None]) -> bool:
    return not any(running(pid) for pid in pids.values())
