"""Benchmark: `rebuild` of a run log of EVENTS events (default 1,000,000) from its latest snapshot and the events
after it. Target (issue 9): <= 60 s.

Generates, set-based in SQL, a log of thousands of integrations (one per 400 events), each crawled daily: a first
crawl reporting its whole catalog (150 assets, or 2,000 for one integration in eight, in batches of up to 1,000), then
runs that update 20 assets (85%: lineage, sometimes warnings and a deletion, SUCCESS), fail after a batch (10%) or are
cancelled while queued (5%). The first (1 - TAIL) of the log in time is written, replayed whole to build the read
models (what `rebuild` did before snapshots, printed for comparison), then compacted with the default retention policy
(30 days, the last 3 successful syncs); the rest of the log (runs in flight at the snapshot included) is written after
it, and `rebuild` is timed. Run with the Makefile's TEST_ENV: `python -m tests.bench.rebuild_bench`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from services.core import retention
from services.core.retention import RetentionPolicy
from services.core.store import rebuild
from services.manage.__main__ import MIGRATIONS
from shared.postgres import create_pool, migrate
from tests.bench.generated_log import generate_runs, write_events
from tests.bench.support import at_most, verdict
from tests.support import recreate_database

EVENTS = int(os.environ.get("BENCH_REBUILD_EVENTS", "1000000"))
TAIL = float(os.environ.get("BENCH_REBUILD_TAIL", "0.1"))  # the share of the log written after the snapshot
TARGET_S = 60.0
T = TypeVar("T")


async def main() -> None:
    dsn = await recreate_database(os.environ["DATABASE_URL"], "ingestion_rebuild_bench")
    await migrate(dsn, MIGRATIONS)
    pool = await create_pool(dsn, max_size=2)
    try:
        async with pool.acquire() as conn:
            await bench(conn)
    finally:
        await pool.close()


async def bench(conn: asyncpg.Connection) -> None:
    started = time.perf_counter()
    generated = await generate_runs(conn, EVENTS)
    cut = await conn.fetchval("SELECT percentile_disc($1::float8) WITHIN GROUP (ORDER BY t) FROM g_events", 1 - TAIL)
    history = await write_events(conn, before=cut)
    print(f"rebuild bench: {generated.events:,} events of {generated.runs:,} runs of {generated.integrations:,} "
          f"integrations; {history:,} written before the snapshot in {time.perf_counter() - started:.1f}s "
          f"(set-based SQL)")  # fmt: skip

    seconds, replayed = await timed(rebuild.rebuild(conn, from_snapshot=False))
    print(f"  full replay of those {replayed:,} events (no snapshot yet, as every rebuild was before): {seconds:.1f}s")

    policy = RetentionPolicy()
    seconds, done = await timed(retention.compact(conn, policy, datetime.now(UTC)))
    assert done is not None
    copied = ", ".join(f"{rows:,} {model}" for model, rows in done.snapshot.rows.items())
    c = done.compacted
    print(f"  compaction (keep {policy.keep_days:g} days, the last {policy.keep_runs} successful syncs): snapshot of "
          f"{copied}; the batches of {c.runs:,} runs compacted ({c.events:,} events, {c.bytes_before / 1e6:,.0f} MB "
          f"of payload) in {seconds:.1f}s")  # fmt: skip

    tail = await write_events(conn, before=None)
    seconds, replayed = await timed(rebuild.rebuild(conn))
    figure = at_most(f"run log of {history + tail:,} events", f"rebuild (snapshot + {replayed:,} events)", seconds,
                     TARGET_S, " s")  # fmt: skip
    print(f"  rebuild = snapshot + {replayed:,} events after it (of {history + tail:,} in the log): {seconds:.1f}s "
          f"(target at 1,000,000 events: <= {TARGET_S:g}s; {verdict(figure.met)} at {EVENTS:,})")  # fmt: skip


async def timed(work: Awaitable[T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = await work
    return time.perf_counter() - started, result


if __name__ == "__main__":
    asyncio.run(main())
