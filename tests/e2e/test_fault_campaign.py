"""The fault campaign: a steady stream of runs while every service is killed and the broker and database restart.

It runs on servers of its own (restarting the shared test servers would break every other test): a real
PostgreSQL and Kafka started with infra/local.sh on free ports, and the five services as processes. A driver
triggers and cancels runs on 30 integrations (some on a slow source) while, one after the other, each service
is killed with SIGKILL and restarted, the broker is restarted, and PostgreSQL is stopped for a while and started
again. After each fault a probe run measures how long until a new run succeeds. At the end: every accepted run
is terminal, none is lost or stuck, no transition was applied twice, every successful run's assets are all in
the store, `rebuild` reproduces the read models, and the API never answered 500.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from tests.e2e.campaign_support import (
    HEARTBEAT_TIMEOUT_S,
    RUNS_WANTED,
    Ledger,
    Servers,
    check_end_state,
    count_runs,
    drive,
    healthy,
    recovery_s,
    settle_s,
    slow_source,
)
from tests.e2e.conftest import ROOT, SERVICES, Client, Stack, free_port, postgres_integration
from tests.support import create_shop_database, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def campaign(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Stack, Servers]]:
    state_dir = ROOT / ".local" / f"campaign-{uuid.uuid4().hex[:6]}"
    pg_port, kafka_port, controller_port, api_port = free_port(), free_port(), free_port(), free_port()
    dsn = f"postgresql://postgres:ingest@127.0.0.1:{pg_port}/ingestion_campaign"
    env = os.environ | {
        "STATE_DIR": str(state_dir), "PG_PORT": str(pg_port), "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(controller_port), "KAFKA_SASL_PORT": "", "APP_ENV": "test", "DATABASE_URL": dsn,
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}", "API_PORT": str(api_port),
        "BOOTSTRAP_API_KEY": "campaign-key", "HEARTBEAT_INTERVAL_SECONDS": "0.5",
        "HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT_S), "QUEUED_TIMEOUT_SECONDS": "60",
        "SCHEDULER_TICK_SECONDS": "0.5", "CONNECTOR_SHUTDOWN_GRACE_SECONDS": "1", "LOG_FORMAT": "json",
    }  # fmt: skip
    servers = Servers(state_dir, env)
    stack = Stack(url=f"http://127.0.0.1:{api_port}", dsn=dsn, env=env, log_dir=tmp_path_factory.mktemp("campaign"))
    try:
        await servers.up()
        migrate = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.manage", "migrate",
                                                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
        assert await migrate.wait() == 0
        for name in SERVICES:
            stack.start(name)
        yield stack, servers
    finally:
        for name in list(stack.processes):
            stack.stop(name, signal.SIGKILL)
        await asyncio.to_thread(servers.local_sh, "down")
        shutil.rmtree(state_dir, ignore_errors=True)


async def test_fault_campaign(campaign: tuple[Stack, Servers]) -> None:
    stack, servers = campaign
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        client = Client(session, stack.url, "campaign-key")
        await eventually(lambda: healthy(client), timeout=60)
        fast = [await create_shop_database(stack.dsn, f"campaign_src_{i}") for i in range(5)]
        slow = await create_shop_database(stack.dsn, "campaign_src_slow")
        names = [f"campaign-{i:02d}" for i in range(30)]
        for i, name in enumerate(names):
            body = postgres_integration(slow if i % 6 == 5 else fast[i % 5], name)
            assert (await client.call("POST", "/api/integrations", json=body))[0] == 201
        assert (await client.call("POST", "/api/integrations", json=postgres_integration(fast[0], "probe-campaign")))[
            0
        ] == 201
        ledger, stop = Ledger(), asyncio.Event()
        background = [
            asyncio.create_task(slow_source(slow, stop)),
            asyncio.create_task(drive(client, names, ledger, stop)),
        ]

        async def kill(name: str) -> None:
            stack.processes[name].kill()  # SIGKILL: no goodbye, no cleanup
            await asyncio.to_thread(stack.processes.pop(name).wait)
            await asyncio.sleep(1)
            stack.start(name)  # what a supervisor (make run, docker compose, Kubernetes) does

        outage_statuses: Counter[int] = Counter()

        async def postgres_outage() -> None:
            await servers.stop_postgres()
            ends = time.monotonic() + 5
            while time.monotonic() < ends:  # the API is up but its database is not
                answer = await ledger.call(client, "GET", "/api/integrations")
                outage_statuses[answer[0] if answer else 0] += 1
                await asyncio.sleep(0.25)
            await servers.up()

        faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            *((f"kill -9 {name}", lambda name=name: kill(name)) for name in SERVICES),  # type: ignore[misc]
            ("restart kafka", servers.restart_kafka),
            ("stop postgres 5 s", postgres_outage),
        ]
        recoveries: list[tuple[str, int, float, float]] = []
        started = time.monotonic()
        for label, inject in faults:
            await asyncio.sleep(3)  # load flows between faults

            async def crawling() -> int | None:
                return await count_runs(stack.dsn, "RUNNING")

            in_flight = await eventually(crawling, timeout=60)  # the fault hits runs mid-crawl
            accepted_before = list(ledger.accepted)
            await inject()
            repaired = time.monotonic()
            recovered = await recovery_s(client, ledger, repaired)
            # Every run accepted before the fault ends, within the heartbeat timeout plus a margin.
            recoveries.append((label, in_flight, recovered, await settle_s(stack.dsn, accepted_before, repaired)))

        async def enough_runs() -> bool:
            return len(ledger.accepted) >= RUNS_WANTED

        await eventually(enough_runs, timeout=120)
        stop.set()
        await asyncio.gather(*background)
        settled_at = time.monotonic()

        ids = [uuid.UUID(r) for r in ledger.accepted]
        try:
            await settle_s(stack.dsn, ledger.accepted, settled_at)
        except AssertionError:
            pass  # counted as stuck below, with the details
        settled_s = time.monotonic() - settled_at
        found = await check_end_state(stack, ids)

    report = [
        f"fault campaign: {len(ids)} runs accepted over {settled_at - started:.0f}s on 30 integrations "
        f"({ledger.cancels} cancel requests); outcomes {dict(found.by_status)}",
        f"faults: {len(faults)} ({', '.join(label for label, _ in faults)})",
        "per fault: runs crawling when it hit / repair -> a new run SUCCESS / repair -> all earlier runs ended:",
        *(f"  {label}: {n} / {r:.1f}s / {t:.1f}s" for label, n, r, t in recoveries),
        f"API answers: {dict(sorted(ledger.statuses.items()))}, unreachable while the api was down: "
        f"{ledger.unreachable}; during the database outage: {dict(outage_statuses)}",
        f"lost {found.lost}, duplicated transitions {len(found.duplicated)}, stuck {len(found.stuck)} (all "
        f"terminal {settled_s:.1f}s after the load stopped), successful runs with missing assets "
        f"{len(found.incomplete)}, rebuild == live: {found.rebuilt_equal}, server errors: {len(ledger.server_errors)}",
    ]
    print("\n" + "\n".join(report))
    assert len(ids) >= RUNS_WANTED
    assert found.lost == 0 and not found.stuck and not found.duplicated and not found.incomplete, found
    assert found.rebuilt_equal
    assert not ledger.server_errors, ledger.server_errors
    assert outage_statuses[503] > 0 and set(outage_statuses) <= {503}, outage_statuses
    assert found.by_status["SUCCESS"] > len(ids) / 2
