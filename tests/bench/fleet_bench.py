"""Benchmark: many integrations crawled at once.

BENCH_FLEET (default 200x100) integrations of that many tables each, one schema each of a shared source catalog
(20 columns per table, views, comments, foreign keys), triggered together on fresh services. Every run must end
SUCCESS, reaped by none, with exactly its schema's assets; the benchmark fails otherwise. Prints the wall time from
the first trigger to the last SUCCESS next to the same reads done directly and concurrently.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

import aiohttp
import asyncpg

from tests.bench.source_catalog import Catalog, ensure_catalog, plain_read
from tests.bench.support import Api, Ended, Figure, record, running_stack, runs_ended
from tests.support import recreate_database

INTEGRATIONS, TABLES = (int(n) for n in os.environ.get("BENCH_FLEET", "200x100").split("x"))
# Plain reads at once: the test server allows 200 connections, and the running services hold some of them.
READERS = 100


async def plain_reads(source: str, catalog: Catalog) -> float:
    """Each integration's read of its schema, all started together (at most READERS connections at a time)."""
    gate = asyncio.Semaphore(READERS)
    out = Path(tempfile.mkdtemp())

    async def read(schema: int) -> None:
        async with gate:
            await plain_read(source, catalog, [schema], out / f"{schema}.jsonl")

    began = time.perf_counter()
    await asyncio.gather(*(read(schema) for schema in range(catalog.schemas)))
    return time.perf_counter() - began


def wrong_results(ended: dict[uuid.UUID, Ended], expected: int) -> list[str]:
    """Every run that did not end SUCCESS with exactly its schema's assets, or that the reaper ended."""
    wrong = []
    for run_id, end in ended.items():
        run = end.run
        if end.reaped or run["status"] != "SUCCESS" or run["assets_processed"] != expected:
            wrong.append(f"{run_id}: {run['status']}, reaped={end.reaped}, {run['assets_processed']} assets "
                         f"(expected {expected}): {run['message']}")  # fmt: skip
    return wrong


async def main() -> None:
    base = os.environ["DATABASE_URL"]
    catalog = Catalog(INTEGRATIONS, INTEGRATIONS * TABLES)
    source = await ensure_catalog(base, catalog)
    expected = catalog.counted_assets([0])
    print(f"{INTEGRATIONS} integrations x {TABLES} tables ({expected} assets each), triggered together", flush=True)
    dsn = await recreate_database(base, "ingestion_bench")
    async with running_stack(dsn) as stack, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        api = Api(session, stack.url)
        db = await asyncpg.connect(dsn)
        try:
            await api.create_postgres_integration("warm-up", source, ["no_such_schema"])
            await runs_ended(db, [await api.trigger("warm-up")])
            for schema in range(INTEGRATIONS):
                await api.create_postgres_integration(f"fleet-{schema}", source, [catalog.schema(schema)])
            plain = await plain_reads(source, catalog)
            began = time.perf_counter()
            run_ids = await asyncio.gather(*(api.trigger(f"fleet-{schema}") for schema in range(INTEGRATIONS)))
            accepted = time.perf_counter() - began
            ended = await runs_ended(db, run_ids, interval=0.05)
            stored = await db.fetchval("SELECT count(*) FROM assets WHERE deleted_at IS NULL AND integration_id IN "
                                       "(SELECT id FROM integrations WHERE external_id LIKE 'fleet-%')")  # fmt: skip
        finally:
            await db.close()
    wrong = wrong_results(ended, expected)
    assert not wrong, f"{len(wrong)} of {INTEGRATIONS} runs went wrong:\n" + "\n".join(wrong[:20])
    assert stored == INTEGRATIONS * expected, (stored, INTEGRATIONS * expected)
    wall = max(end.seen_at for end in ended.values()) - began
    durations = [end.seen_at - began for end in ended.values()]
    print(f"the same {INTEGRATIONS} plain reads, directly and concurrently ({READERS} connections at most): "
          f"{plain:.3f} s")  # fmt: skip
    print(f"first trigger -> last SUCCESS: {wall:.3f} s ({wall / plain:.1f}x the plain reads); all {INTEGRATIONS} "
          f"triggers answered 202 within {accepted:.3f} s; trigger -> SUCCESS per run: median "
          f"{median(durations):.3f} s, first {min(durations):.3f} s", flush=True)  # fmt: skip
    print(f"all {INTEGRATIONS} runs SUCCESS with {expected} assets each, none reaped")
    scenario = f"fleet {INTEGRATIONS}x{TABLES}"
    record(Figure(scenario, "first trigger -> last SUCCESS", f"{wall:.2f} s ({wall / plain:.1f}x the plain reads)"))
    record(Figure(scenario, "plain reads, concurrently", f"{plain:.2f} s"))
    record(Figure(scenario, "runs", f"{INTEGRATIONS} SUCCESS, 0 reaped", "all SUCCESS, none reaped", True))


if __name__ == "__main__":
    asyncio.run(main())
