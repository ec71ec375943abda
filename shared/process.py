"""Running a service process: its main coroutine until SIGINT/SIGTERM, supervised background tasks,
and a liveness file for container health checks.

A background task that dies takes its process down with a log line naming it (`background_task_died`);
the process exits non-zero and whatever runs it (`make run`, a container restart policy) restarts it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = structlog.get_logger()

LIVENESS_EVERY_S = 5.0


class BackgroundTaskDied(RuntimeError):
    """A task that had to live as long as its process ended (raised, or returned)."""


class Supervisor:
    """Background tasks that live exactly as long as the `async with` block that started them.

    If one ends, the block is cancelled and `BackgroundTaskDied` raised from it; leaving the block
    (normally or not) cancels the tasks still running:

        async with Supervisor() as supervisor:
            supervisor.start("cancellations", listen_for_cancellations())
            await consume_requests()
    """

    def __init__(self) -> None:
        self._group = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[None]] = []
        self._work: list[Coroutine[Any, Any, None]] = []

    async def __aenter__(self) -> Supervisor:
        await self._group.__aenter__()
        return self

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self._work.append(work)
        self._tasks.append(self._group.create_task(_guard(name, work), name=name))

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()  # no longer needed; a cancelled task is not a death
        try:
            await self._group.__aexit__(exc_type, exc, tb)
            return
        except BaseExceptionGroup as group:
            died = group.subgroup(BackgroundTaskDied)
            if died is None and exc is None:
                raise
            # Unwrapped: the death (its __cause__ is what killed the task), else the block's own error.
            error = died.exceptions[0] if died is not None else exc
        finally:
            for work in self._work:
                work.close()  # a task cancelled before it ran never awaited its coroutine: no warning
        assert error is not None
        raise error


async def _guard(name: str, work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception as error:
        log.critical("background_task_died", task=name, error=repr(error), exc_info=True)
        raise BackgroundTaskDied(f"background task '{name}' died: {error!r}") from error
    log.critical("background_task_died", task=name, error="it returned; it must run as long as its process")
    raise BackgroundTaskDied(f"background task '{name}' ended")


class ProcessSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # Touched every few seconds while the event loop runs; a container health check reads its age.
    liveness_file: Path | None = Field(default=None, alias="LIVENESS_FILE")


async def _keep_alive(path: Path) -> None:
    while True:
        path.touch()
        await asyncio.sleep(LIVENESS_EVERY_S)


def is_alive(path: Path, max_age_s: float) -> bool:
    """True while `path` was touched within `max_age_s`: the process runs and its event loop is not stuck."""
    try:
        return time.time() - path.stat().st_mtime <= max_age_s
    except FileNotFoundError:
        return False


def run_service(main: Callable[[], Awaitable[None]]) -> None:
    """Run `main` until SIGINT/SIGTERM (exit 0, after its cleanup) or until it fails (exit 1, logged)."""
    liveness_file = ProcessSettings().liveness_file

    async def supervised() -> None:
        async with Supervisor() as supervisor:
            if liveness_file is not None:
                supervisor.start("liveness", _keep_alive(liveness_file))
            await main()

    async def runner() -> int:
        task = asyncio.ensure_future(supervised())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("service_stopped")
            return 0
        except Exception as error:
            log.critical("service_crashed", error=repr(error), exc_info=True)
            return 1
        log.critical("service_crashed", error="its main loop returned; it must run until stopped")
        return 1

    sys.exit(asyncio.run(runner()))


if __name__ == "__main__":
    # Container health check: `python -m shared.process /tmp/alive 30` exits 0 iff touched within 30 s.
    sys.exit(0 if is_alive(Path(sys.argv[1]), float(sys.argv[2])) else 1)
