"""Running a service's main coroutine until SIGINT/SIGTERM, then letting it clean up."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger()


def run_service(main: Callable[[], Awaitable[None]]) -> None:
    async def runner() -> None:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("service_stopped")

    asyncio.run(runner())
