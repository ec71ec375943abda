"""Supervised background tasks: one that dies takes its process down, loudly; none outlives its block."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from shared.process import BackgroundTaskDied, Supervisor

ROOT = Path(__file__).resolve().parents[2]


async def forever(stopped: list[str] | None = None, name: str = "") -> None:
    try:
        await asyncio.Event().wait()
    finally:
        if stopped is not None:
            stopped.append(name)


async def test_a_background_task_that_fails_cancels_the_block_and_names_itself():
    async def listener() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("the broker went away")

    reached_the_end = False
    with capture_logs() as logs, pytest.raises(BackgroundTaskDied, match="'cancellations' died") as died:
        async with Supervisor() as supervisor:
            supervisor.start("cancellations", listener())
            await forever()
            reached_the_end = True
    assert not reached_the_end
    assert isinstance(died.value.__cause__, ConnectionResetError)
    assert [(e["event"], e["task"], e["log_level"]) for e in logs] == [
        ("background_task_died", "cancellations", "critical")
    ]


async def test_a_background_task_that_returns_is_a_death_too():
    async def listener() -> None:
        return None

    with capture_logs() as logs, pytest.raises(BackgroundTaskDied, match="'listener' ended"):
        async with Supervisor() as supervisor:
            supervisor.start("listener", listener())
            await forever()
    assert logs[0]["event"] == "background_task_died"


async def test_leaving_the_block_stops_its_background_tasks_quietly():
    stopped: list[str] = []
    with capture_logs() as logs:
        async with Supervisor() as supervisor:
            supervisor.start("a", forever(stopped, "a"))
            supervisor.start("b", forever(stopped, "b"))
            await asyncio.sleep(0.01)
    assert sorted(stopped) == ["a", "b"] and logs == []


async def test_an_error_of_the_block_itself_comes_out_as_it_is():
    with pytest.raises(KeyError, match="mine"):
        async with Supervisor() as supervisor:
            supervisor.start("a", forever())
            raise KeyError("mine")


SERVICE = """
import asyncio, sys
from shared.logging import configure_logging
from shared.process import Supervisor, run_service

async def listener():
    await asyncio.sleep(float(sys.argv[1]))
    raise RuntimeError("listener lost its connection")

async def main():
    async with Supervisor() as supervisor:
        supervisor.start("outbox_listener", listener())
        print("started", flush=True)
        await asyncio.Event().wait()

configure_logging("INFO", "json", service="demo")
run_service(main)
"""


def start_service(tmp_path: Path, die_after_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SERVICE, str(die_after_s)], cwd=ROOT, env=os.environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_process_whose_background_task_dies_exits_non_zero_saying_which(tmp_path):
    process = start_service(tmp_path, die_after_s=0.2)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert '"event": "background_task_died"' in stderr and '"task": "outbox_listener"' in stderr
    assert "listener lost its connection" in stderr and '"event": "service_crashed"' in stderr


def test_sigterm_stops_a_supervised_process_cleanly(tmp_path):
    process = start_service(tmp_path, die_after_s=3600)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "started"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and '"event": "service_stopped"' in stderr


PRIORITY_PROBE = """
import asyncio, os, sys
from shared.process import run_service

async def main():
    print(type(asyncio.get_running_loop()).__module__, os.getpriority(os.PRIO_PROCESS, 0), flush=True)
    raise asyncio.CancelledError  # as when stopped: exit 0

run_service(main, int(sys.argv[1]))
"""


@pytest.mark.parametrize(("started_at", "niceness", "runs_at"), [(0, 10, 10), (0, 0, 0), (15, 10, 15)])
def test_a_service_runs_on_uvloop_at_its_niceness_and_never_raises_its_priority(started_at, niceness, runs_at):
    done = subprocess.run(["nice", "-n", str(started_at), sys.executable, "-c", PRIORITY_PROBE, str(niceness)],
                          cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == ["uvloop", str(runs_at)]
