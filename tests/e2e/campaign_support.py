"""What the fault campaign (test_fault_campaign.py) is made of: its servers, load driver, probes and checks."""

from __future__ import annotations

import asyncio
import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from tests.e2e.conftest import ROOT, Client, Stack
from tests.support import SHOP_ASSETS, SHOP_COUNTED, eventually

TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
HEARTBEAT_TIMEOUT_S = 4
RUNS_WANTED = 100  # at least


async def count_runs(dsn: str, status: str, among: list[str] | None = None) -> int | None:
    """How many runs have `status` (among some ids); None while the database cannot answer."""
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None
    try:
        ids = [uuid.UUID(r) for r in among] if among is not None else None
        return int(await conn.fetchval(
            "SELECT count(*) FROM runs WHERE status = $1 AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[]))", status, ids
        ))  # fmt: skip
    finally:
        await conn.close()


async def settle_s(dsn: str, run_ids: list[str], since: float) -> float:
    """Seconds from `since` until none of `run_ids` is QUEUED or RUNNING any more."""

    async def settled() -> bool:
        counts = [await count_runs(dsn, status, run_ids) for status in ("QUEUED", "RUNNING")]
        return counts == [0, 0]

    await eventually(settled, timeout=HEARTBEAT_TIMEOUT_S + 60, interval=0.25)
    return time.monotonic() - since


@dataclass
class Servers:
    """PostgreSQL and Kafka of the campaign alone, driven through infra/local.sh."""

    state_dir: Path
    env: dict[str, str]

    def local_sh(self, command: str) -> None:
        done = subprocess.run(["bash", str(ROOT / "infra" / "local.sh"), command], env=self.env,
                              capture_output=True, text=True, timeout=180)  # fmt: skip
        assert done.returncode == 0, f"infra/local.sh {command} failed:\n{done.stdout}\n{done.stderr}"

    async def up(self) -> None:
        await asyncio.to_thread(self.local_sh, "up")  # starts whatever is not running

    async def restart_kafka(self) -> None:
        pid = int((self.state_dir / "kafka" / "pid").read_text())
        os.kill(pid, signal.SIGTERM)
        await eventually(lambda: _gone(pid), timeout=60)
        await self.up()

    async def stop_postgres(self) -> None:
        [pg_ctl] = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1:] or [shutil.which("pg_ctl") or "pg_ctl"]
        command = [pg_ctl, "-D", str(self.state_dir / "postgres" / "data"), "-m", "fast", "-w", "stop"]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        await asyncio.to_thread(subprocess.run, command, check=True, stdout=subprocess.DEVNULL, timeout=60)


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@dataclass
class Ledger:
    """What the driver saw: every accepted run, every status code, what could not reach the API."""

    accepted: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unreachable: int = 0
    cancels: int = 0

    async def call(self, client: Client, method: str, path: str) -> tuple[int, object] | None:
        try:
            status, body, headers = await client.call(method, path)
        except (TimeoutError, aiohttp.ClientError):
            self.unreachable += 1  # the API process is down: a client retries later
            return None
        self.statuses[status] += 1
        if status >= 500 and (status != 503 or not headers["Content-Type"].startswith("application/problem+json")):
            self.server_errors.append(f"{method} {path} -> {status}: {body}")
        return status, body


async def slow_source(dsn: str, stop: asyncio.Event) -> None:
    """Holds a lock the crawl needs for 3 s out of every 4: runs on this source are slow (and outlive faults)."""
    while not stop.is_set():
        try:
            conn = await asyncpg.connect(dsn)
            try:
                while not stop.is_set():
                    async with conn.transaction():
                        await conn.execute("LOCK TABLE sales.big_orders IN ACCESS EXCLUSIVE MODE")
                        await asyncio.sleep(3)
                    await asyncio.sleep(1)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await asyncio.sleep(0.5)  # the database is being restarted


async def drive(client: Client, names: list[str], ledger: Ledger, stop: asyncio.Event) -> None:
    """Trigger runs at about 2 per second on random integrations; cancel one in six shortly after."""
    rng = random.Random(20261122)
    while not stop.is_set():
        name = rng.choice(names)
        answer = await ledger.call(client, "POST", f"/api/integrations/{name}/run")
        if answer is not None and answer[0] == 202:
            ledger.accepted.append(answer[1]["ingestionRunId"])  # type: ignore[index]
            if rng.random() < 1 / 6:
                await asyncio.sleep(rng.uniform(0.05, 1.0))
                ledger.cancels += 1
                await ledger.call(client, "POST", f"/api/integrations/{name}/cancel")
        await asyncio.sleep(0.5)


async def recovery_s(client: Client, ledger: Ledger, since: float) -> float:
    """Seconds from `since` until a freshly triggered probe run succeeds."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = await ledger.call(client, "POST", "/api/integrations/probe-campaign/run")
        if answer is not None and answer[0] == 202:
            run_id = answer[1]["ingestionRunId"]  # type: ignore[index]
            while time.monotonic() < deadline:
                got = await ledger.call(client, "GET", f"/api/integrations/probe-campaign/runs/{run_id}")
                if got is not None and got[0] == 200 and got[1]["status"] in TERMINAL:  # type: ignore[index]
                    if got[1]["status"] == "SUCCESS":  # type: ignore[index]
                        return time.monotonic() - since
                    break  # the fault ended the probe; try again
                await asyncio.sleep(0.2)
        await asyncio.sleep(0.3)
    raise AssertionError(f"no run succeeded within 120 s of the repair; ledger: {ledger}")


@dataclass
class EndState:
    by_status: Counter[str]
    lost: int
    stuck: list[dict[str, object]]
    duplicated: list[dict[str, object]]
    incomplete: list[dict[str, object]]
    rebuilt_equal: bool


# A transition applied twice shows as a second start or end, or as a gap in a run's sequence numbers.
_DUPLICATED = """
SELECT run_id, count(*) FILTER (WHERE type = 'run.started.v1') AS starts,
       count(*) FILTER (WHERE type IN ('run.succeeded.v1', 'run.failed.v1', 'run.cancelled.v1')) AS ends,
       max(seq) AS last_seq, count(*) AS events
FROM run_events WHERE run_id = ANY($1::uuid[]) GROUP BY run_id
HAVING count(*) FILTER (WHERE type = 'run.started.v1') > 1
    OR count(*) FILTER (WHERE type IN ('run.succeeded.v1', 'run.failed.v1', 'run.cancelled.v1')) > 1
    OR max(seq) <> count(*)
"""
# A successful run's staged batches add up to its counts (a lost batch would not), and every source is the
# unchanged shop catalog, so it saw all of it and the store holds all of it.
# The counted assets a run's batches carried (the database, the level above schemas, is sent but not counted; the
# campaign never deletes one, so deleted keys are all counted).
_BATCHES = """
WITH sent AS (
    SELECT e.run_id, jsonb_array_length(e.payload -> 'deleted') AS deleted,
           (SELECT count(*) FROM jsonb_array_elements(e.payload -> 'upserted') u
            WHERE NOT (u ->> 'kind' = 'database' AND u ->> 'parent_key' = '')) AS upserted
    FROM run_events e WHERE e.run_id = ANY($1::uuid[]) AND e.type = 'run.assets_changed.v1')
SELECT r.id, r.assets_created + r.assets_updated AS changed, r.assets_deleted AS deleted,
       coalesce(sum(s.upserted), 0) AS sent_upserted, coalesce(sum(s.deleted), 0) AS sent_deleted
FROM runs r LEFT JOIN sent s ON s.run_id = r.id
WHERE r.id = ANY($1::uuid[]) AND r.status = 'SUCCESS'
GROUP BY r.id
HAVING r.assets_created + r.assets_updated <> coalesce(sum(s.upserted), 0)
    OR r.assets_deleted <> coalesce(sum(s.deleted), 0)
"""
_INCOMPLETE = """
SELECT r.id, i.external_id, r.assets_processed,
       (SELECT count(*) FROM assets a WHERE a.integration_id = r.integration_id AND a.deleted_at IS NULL) AS live
FROM runs r JOIN integrations i ON i.id = r.integration_id
WHERE r.id = ANY($1::uuid[]) AND r.status = 'SUCCESS'
"""


async def check_end_state(stack: Stack, ids: list[uuid.UUID]) -> EndState:
    db = await asyncpg.connect(stack.dsn)
    try:
        rows = await db.fetch("SELECT id, status, message FROM runs WHERE id = ANY($1::uuid[])", ids)
        duplicated = [dict(r) for r in await db.fetch(_DUPLICATED, ids)]
        successful = await db.fetch(_INCOMPLETE, ids)
        incomplete = [dict(r) for r in successful if (r["assets_processed"], r["live"]) != (SHOP_COUNTED, SHOP_ASSETS)]
        incomplete += [dict(r) for r in await db.fetch(_BATCHES, ids)]
        runs_before = await db.fetch("SELECT * FROM runs ORDER BY id")
        assets_before = await db.fetch("SELECT * FROM assets ORDER BY integration_id, asset_key")
        rebuild = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.manage", "rebuild", cwd=ROOT, env=stack.env, stdout=subprocess.DEVNULL
        )
        assert await rebuild.wait() == 0
        runs_after = await db.fetch("SELECT * FROM runs ORDER BY id")
        assets_after = await db.fetch("SELECT * FROM assets ORDER BY integration_id, asset_key")
    finally:
        await db.close()
    return EndState(
        by_status=Counter(r["status"] for r in rows),
        lost=len(ids) - len(rows),
        stuck=[dict(r) for r in rows if r["status"] not in TERMINAL],
        duplicated=duplicated,
        incomplete=incomplete,
        rebuilt_equal=runs_after == runs_before and assets_after == assets_before,
    )


async def healthy(client: Client) -> bool:
    try:
        return (await client.call("GET", "/health"))[0] == 200
    except aiohttp.ClientError:
        return False
