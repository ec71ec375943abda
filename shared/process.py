"""Running a service process: its main coroutine until SIGINT/SIGTERM, and supervised background tasks.
(Health is served on each process's ops port: shared/ops.py.)

A background task that dies takes its process down with a log line naming it (`background_task_died`);
the process exits non-zero and whatever runs it (`make run`, a container restart policy) restarts it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

import structlog
import uvloop

log = structlog.get_logger()


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


def run_service(main: Callable[[], Awaitable[None]], niceness: int = 0) -> None:
    """Run `main` on uvloop until SIGINT/SIGTERM (exit 0, after its cleanup) or until it fails (exit 1, logged),
    at CPU priority `niceness` or lower (see WORKER_NICENESS)."""
    lower_priority(niceness)

    async def runner() -> int:
        task = asyncio.ensure_future(main())
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

    sys.exit(uvloop.run(runner()))


def lower_priority(niceness: int) -> None:
    """Lower this process's CPU priority to `niceness` unless it is already that low (raising it needs root). Called
    before the event loop starts any thread: on Linux a nice value is per thread, inherited by threads it creates."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
