"""The ops port every process serves: `/livez`, `/readyz` (the service's own readiness checks) and `/metrics`
(its Prometheus registry). Each service wires it explicitly in its bootstrap with `serving(...)`.

- /livez: 200 while the event loop answers (a blocked loop answers nothing; the orchestrator restarts it).
  Nothing else: an outage of the database or Kafka is a readiness matter, a restart would not cure it.
- /readyz: 200 when every check passes, else 503; the body names each check's result either way.
- /metrics: the registry after `refresh` (gauges the database knows are read on scrape, within a timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import structlog
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.metrics import consumer_lag

log = structlog.get_logger()

CHECK_TIMEOUT_S = 2.0  # a check that takes longer fails: a health check must answer fast
REFRESH_TIMEOUT_S = 2.0

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
async def serving(host: str, port: int, ops: Ops, service: str) -> AsyncIterator[int]:
    """Serve the ops app on host:port (0: an ephemeral port) while the block runs; yields the bound port."""
    runner = web.AppRunner(create_ops_app(ops), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        log.info("ops_serving", service=service, host=host, port=bound)
        yield bound
    finally:
        await runner.cleanup()


async def livez(_: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[OPS].checks
    results = await asyncio.gather(*(_run_check(check) for check in checks.values()))
    problems = dict(zip(checks, results, strict=True))
    ready = all(problem is None for problem in problems.values())
    body = {"status": "ready" if ready else "not_ready", "checks": {k: v or "ok" for k, v in problems.items()}}
    return web.json_response(body, status=200 if ready else 503)


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
