"""Benchmark: trigger -> SUCCESS of a large catalog vs a plain set-based read of the same metadata, per size.

For each size of BENCH_TABLES (default "2000 20000"): a source catalog of that many tables in 10 schemas (COLUMNS
columns each, views, comments, foreign keys), a fresh control-plane database and fresh services, a warm-up run,
then rounds of: the plain read, a first crawl of a new integration, its unchanged re-run. Each run must be SUCCESS
with every asset projected in Postgres. Prints the medians, their ratios to the plain read next to the targets,
and the peak RSS of the connector and projector per size (and its growth from the smallest size to the largest).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import aiohttp
import asyncpg

from tests.bench.source_catalog import Catalog, ensure_catalog, plain_read, table_sizes
from tests.bench.support import Api, Figure, Stack, at_most, record, running_stack, runs_ended, samples, verdict
from tests.support import recreate_database

COLUMNS = int(os.environ.get("BENCH_COLUMNS", "20"))
SCHEMAS = 10
RERUN_TARGET = 1.1  # x the plain read
MEMORY_TARGET = 1.5  # peak RSS at the largest size / at the smallest: "flat"
WATCHED = ("connector", "projector")  # the services whose memory must not grow with the catalog


def rounds(tables: int) -> int:
    # A round of 20,000 tables takes about half a minute: 2 rounds there, 3 at 2,000 (BENCH_ROUNDS overrides both).
    return int(os.environ.get("BENCH_ROUNDS") or (3 if tables <= 5000 else 2))


def first_crawl_target(tables: int) -> float:
    return 1.5 if tables <= 2000 else 2.0  # x the plain read: the targets at 2,000 and at 20,000 tables


@dataclass(frozen=True)
class Crawls:
    """Per round: the plain read, the first crawl of a new integration, and its unchanged re-run (seconds)."""

    plain: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    reruns: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class SizeResult:
    tables: int
    crawls: Crawls
    peak_rss_mb: dict[str, float]


async def timed_run(api: Api, db: asyncpg.Connection, external_id: str) -> tuple[float, asyncpg.Record]:
    began = time.perf_counter()
    run_id = await api.trigger(external_id)
    ended = (await runs_ended(db, [run_id]))[run_id]
    return ended.seen_at - began, ended.run


async def stored_assets(db: asyncpg.Connection, external_id: str) -> int:
    return int(await db.fetchval(
        "SELECT count(*) FROM assets a JOIN integrations i ON i.id = a.integration_id "
        "WHERE i.external_id = $1 AND a.deleted_at IS NULL", external_id,
    ))  # fmt: skip


async def measure(base: str, tables: int) -> SizeResult:
    catalog = Catalog(SCHEMAS, tables, COLUMNS)
    source = await ensure_catalog(base, catalog)
    every = list(range(catalog.schemas))
    expected = catalog.counted_assets(every)
    print(f"{tables} tables in {SCHEMAS} schemas x {COLUMNS} columns, {catalog.relations(every) - tables} views: "
          f"{expected} assets per run", flush=True)  # fmt: skip

    async def create(api: Api, external_id: str, selecting_nothing: bool) -> None:
        schemas = ["no_such_schema"] if selecting_nothing else catalog.schema_names
        await api.create_postgres_integration(external_id, source, schemas)

    async def read() -> float:
        return await plain_read(source, catalog, every, Path(tempfile.mkdtemp()) / "catalog.jsonl")

    crawls, stack = await measure_crawls(base, rounds(tables), create, read, (expected, catalog.stored_assets(every)))
    return SizeResult(tables, crawls, stack.peak_rss_mb)


async def measure_crawls(
    base: str,
    count: int,
    create: Callable[[Api, str, bool], Awaitable[None]],
    read: Callable[[], Awaitable[float]],
    assets: tuple[int, int],
) -> tuple[Crawls, Stack]:
    """Fresh services on a fresh database, warmed up by a run of an integration that selects nothing (`create`'s
    flag), then `count` rounds of: the plain read, a first crawl of a new integration, its unchanged re-run. Every run
    must be SUCCESS with exactly `assets` (counted in the run's figures, stored)."""
    counted, stored = assets
    crawls = Crawls()
    dsn = await recreate_database(base, "ingestion_bench")
    async with running_stack(dsn) as stack, aiohttp.ClientSession() as session:
        api = Api(session, stack.url)
        db = await asyncpg.connect(dsn)
        try:
            # The first run after start also pays for consumer-group joins and the driver's first connection.
            await create(api, "warm-up", True)
            cold, run = await timed_run(api, db, "warm-up")
            assert run["status"] == "SUCCESS", run["message"]
            print(f"cold start (first run after the services started, nothing selected): {cold:.3f} s", flush=True)
            for round_ in range(count):
                external_id = f"bench-{round_}"
                await create(api, external_id, False)
                crawls.plain.append(await read())
                elapsed, run = await timed_run(api, db, external_id)
                assert run["status"] == "SUCCESS", run["message"]
                assert run["assets_processed"] == run["assets_created"] == counted, dict(run)
                assert await stored_assets(db, external_id) == stored
                crawls.firsts.append(elapsed)
                elapsed, run = await timed_run(api, db, external_id)
                counts = (run["status"], run["assets_processed"], run["assets_created"], run["assets_updated"],
                          run["assets_deleted"])  # fmt: skip
                assert counts == ("SUCCESS", counted, 0, 0, 0), dict(run)
                crawls.reruns.append(elapsed)
        finally:
            await db.close()
    return crawls, stack


def report_crawls(scenario: str, tables: int, crawls: Crawls) -> None:
    """The medians of `crawls`, their ratios to the plain read next to the targets (recorded for the summary)."""
    plain, first, rerun = median(crawls.plain), median(crawls.firsts), median(crawls.reruns)
    target = first_crawl_target(tables)
    first_figure = at_most(scenario, "first crawl / plain read", first / plain, target, "x", f"{first:.2f} s")
    rerun_figure = at_most(scenario, "re-run / plain read", rerun / plain, RERUN_TARGET, "x", f"{rerun:.2f} s")
    print(f"rounds: {len(crawls.plain)} (median, then every sample)")
    print(f"plain set-based read to a file:        {plain:7.3f} s   {samples(crawls.plain)}")
    for label, value, figure, values in (("first run:       ", first, first_figure, crawls.firsts),
                                         ("unchanged re-run:", rerun, rerun_figure, crawls.reruns)):  # fmt: skip
        print(f"trigger -> SUCCESS, {label} {value:7.3f} s   {value / plain:.2f}x the plain read "
              f"(target {figure.target}: {verdict(figure.met)})   {samples(values)}", flush=True)  # fmt: skip


def report(result: SizeResult) -> None:
    scenario = f"catalog {result.tables} tables"
    report_crawls(scenario, result.tables, result.crawls)
    rss = result.peak_rss_mb
    print("peak RSS (VmHWM): " + ", ".join(f"{name} {mb:.0f} MiB" for name, mb in sorted(rss.items())), flush=True)
    for name in WATCHED:
        record(Figure(scenario, f"{name} peak RSS", f"{rss[name]:.0f} MiB"))


def report_memory(small: SizeResult, large: SizeResult) -> None:
    print(f"peak RSS growth from {small.tables} to {large.tables} tables (target: flat, within {MEMORY_TARGET}x):")
    for name in WATCHED:
        ratio = large.peak_rss_mb[name] / small.peak_rss_mb[name]
        shown = f"{small.peak_rss_mb[name]:.0f} -> {large.peak_rss_mb[name]:.0f} MiB"
        figure = at_most(f"catalog {large.tables}/{small.tables}", f"{name} peak RSS ratio", ratio, MEMORY_TARGET,
                         "x", shown)  # fmt: skip
        print(f"  {name}: {shown} = {ratio:.2f}x ({verdict(figure.met)})")


async def main() -> None:
    base = os.environ["DATABASE_URL"]
    results: list[SizeResult] = []
    for tables in table_sizes():
        print(f"--- catalog of {tables} tables (fresh services) ---", flush=True)
        results.append(await measure(base, tables))
        report(results[-1])
    if len(results) > 1:
        report_memory(min(results, key=lambda r: r.tables), max(results, key=lambda r: r.tables))


if __name__ == "__main__":
    asyncio.run(main())
