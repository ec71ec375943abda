"""The ops port every process serves: `/livez`, `/readyz` (the service's own readiness checks) and `/metrics`
(its Prometheus registry). Each service wires it explicitly in its bootstrap with `serving(...)`.

- /livez: 200 while the event loop answers (a blocked loop answers nothing; the orchestrator restarts it).
  Nothing else: an outage of the database or Kafka is a readiness matter, a restart would not cure it.
- /readyz: 200 when every check passes, else 503; the body names each check's result either way.
- /metrics: the registry after `refresh` (gauges the database knows are read on scrape, within a timeout).

Given a pool, `serving` also records the same checks' results in `process_status` every few seconds: the API
cannot reach other processes' ops ports in a real deployment, but every process reaches the database.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.metrics import consumer_lag

log = structlog.get_logger()

CHECK_TIMEOUT_S = 2.0  # a check that takes longer fails: a health check must answer fast
REFRESH_TIMEOUT_S = 2.0
STATUS_INTERVAL_S = 5.0  # how often a process records its readiness; readers call it stale after 3 periods
PRUNE_EVERY = 60  # periods between deletions of rows a day old (processes long gone)

# The writer side of process_status lives here, beside the checks it records (shared never imports services).
_UPSERT_STATUS = """
INSERT INTO process_status (service, instance, ready, checks, interval_s, started_at, seen_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (service, instance) DO UPDATE
SET ready = EXCLUDED.ready, checks = EXCLUDED.checks, interval_s = EXCLUDED.interval_s, seen_at = now()
"""
_PRUNE_STATUS = "DELETE FROM process_status WHERE seen_at < now() - interval '1 day'"

# A readiness check: None when fine, else why the process cannot do its job now.
Check = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Ops:
    registry: CollectorRegistry
    checks: Mapping[str, Check]
    refresh: Callable[[], Awaitable[None]] | None = None  # updates gauges collected on scrape


OPS: web.AppKey[Ops] = web.AppKey("ops", Ops)


def create_ops_app(ops: Ops) -> web.Application:
    app = web.Application()
    app[OPS] = ops
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


@asynccontextmanager
async def serving(
    host: str, port: int, ops: Ops, service: str, pool: asyncpg.Pool | None = None,
    status_interval_s: float = STATUS_INTERVAL_S,
) -> AsyncIterator[int]:  # fmt: skip
    """Serve the ops app on host:port (0: an ephemeral port) while the block runs; yields the bound port.
    With a pool, the process's readiness is recorded in process_status meanwhile (and `stopped` at the end)."""
    runner = web.AppRunner(create_ops_app(ops), access_log=None)
    await runner.setup()
    status = None if pool is None else StatusRecorder(pool, service, ops.checks, status_interval_s)
    recorder = None
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        log.info("ops_serving", service=service, host=host, port=bound)
        if status is not None:
            recorder = asyncio.create_task(status.run(), name="process_status")
        yield bound
    finally:
        if status is not None and recorder is not None:
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            await status.record({"process": "stopped"})  # shown at once, rather than stale periods later
        await runner.cleanup()


class StatusRecorder:
    """Upserts this process's row of process_status from its readiness checks, every `interval_s`."""

    def __init__(self, pool: asyncpg.Pool, service: str, checks: Mapping[str, Check], interval_s: float) -> None:
        self.pool = pool
        self.service = service
        self.instance = f"{socket.gethostname()}-{os.getpid()}"
        self.checks = checks
        self.interval_s = interval_s
        self.started_at = datetime.now(UTC)

    async def run(self) -> None:
        periods = 0
        while True:
            await self.record(await run_checks(self.checks), prune=periods % PRUNE_EVERY == 0)
            periods += 1
            await asyncio.sleep(self.interval_s)

    async def record(self, results: dict[str, str], prune: bool = False) -> None:
        """One upsert; a failure is logged, never raised (the database being away is what readers then see)."""
        ready = all(result == "ok" for result in results.values())
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S), self.pool.acquire() as conn:
                await conn.execute(
                    _UPSERT_STATUS, self.service, self.instance, ready, results, self.interval_s, self.started_at
                )
                if prune:
                    await conn.execute(_PRUNE_STATUS)
        except Exception as error:
            log.warning("process_status_not_recorded", error=f"{type(error).__name__}: {error}")


async def livez(_: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    results = await run_checks(request.app[OPS].checks)
    ready = all(result == "ok" for result in results.values())
    body = {"status": "ready" if ready else "not_ready", "checks": results}
    return web.json_response(body, status=200 if ready else 503)


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Every check at once: "ok", or why not."""
    results = await asyncio.gather(*(_run_check(check) for check in checks.values()))
    return {name: problem or "ok" for name, problem in zip(checks, results, strict=True)}


async def metrics(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    if ops.refresh is not None:
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                await ops.refresh()
        except Exception as error:  # the counters are still worth serving; the stale gauges say so in the log
            log.warning("metrics_refresh_failed", error=f"{type(error).__name__}: {error}")
    body = generate_latest(ops.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _run_check(check: Check) -> str | None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check()
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def database_reachable(pool: asyncpg.Pool) -> Check:
    async def check() -> str | None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return None

    return check


def partitions_assigned(consumer: AIOKafkaConsumer, max_lag: int | None = None) -> Check:
    """The group gave this consumer partitions (and, with `max_lag`, it has fetched all but that many)."""

    async def check() -> str | None:
        if not consumer.assignment():
            return "no partitions assigned (yet)"
        if max_lag is None:
            return None
        lags = await consumer_lag(consumer)
        unknown = sorted(tp.partition for tp, lag in lags.items() if lag is None)
        if unknown:
            return f"lag not known yet for partitions {unknown}"
        behind = {tp.partition: lag for tp, lag in lags.items() if lag is not None and lag > max_lag}
        return f"lag above {max_lag} on partitions {behind}" if behind else None

    return check
