"""The benchmarks' own measuring tools: percentiles, the open-loop load generator, the synthetic catalogs' counts
(against the real crawler), and the summary. A benchmark is only as right as these."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from services.connector.diff import counted
from tests.bench import load_generator
from tests.bench.__main__ import summary
from tests.bench.load_bench import covered_share
from tests.bench.load_generator import open_loop
from tests.bench.source_catalog import Catalog, ensure_catalog
from tests.bench.support import Figure, percentile
from tests.integration.test_postgres_source import crawl_all, source_for


def test_percentiles_are_nearest_rank_values_that_were_measured() -> None:
    hundred = [float(v) for v in range(100, 0, -1)]
    assert (percentile(hundred, 0.5), percentile(hundred, 0.99), percentile(hundred, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([float(v) for v in range(1, 1001)], 0.99) == 990.0
    assert percentile([2.0, 9.0, 4.0], 0.99) == 9.0
    assert percentile([7.0], 0.5) == 7.0
    assert percentile(hundred, 0.07) == 7.0


def test_the_share_of_a_window_that_crawls_covered() -> None:
    assert covered_share([(0.0, 10.0), (12.0, 20.0), (30.0, 40.0)], 5.0, 15.0) == pytest.approx(0.8)
    assert covered_share([], 5.0, 15.0) == 0.0


def test_the_summary_marks_missed_targets_and_names_modules_with_wrong_results() -> None:
    figures = [Figure("catalog 2000 tables", "first crawl / plain read", "3.50x (2.00 s)", "<= 1.5x", False),
               Figure("catalog 2000 tables", "re-run / plain read", "1.05x (0.60 s)", "<= 1.1x", True),
               Figure("fleet 200x100", "plain reads, concurrently", "3.10 s")]  # fmt: skip
    lines = summary(figures, ["fleet_bench (exit status 1)"]).splitlines()
    assert lines[1].endswith("NOT met") and lines[2].endswith("met") and lines[3].endswith("3.10 s")
    assert lines[-1].startswith("WRONG RESULTS in fleet_bench (exit status 1)")
    assert summary(figures, []).splitlines()[-1].startswith("every run of every scenario ended as expected")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that answers 200 or 409 (by the parity of ?i=), 500 for i=2, and stalls request 0 until every
    other request has arrived (at most 10 s): a generator that waits for answers before sending never gets there."""
    arrived: list[str] = []
    everyone = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        index = int(request.query["i"])
        arrived.append(str(index))
        if len(arrived) == int(request.query["n"]):
            everyone.set()
        if index == 0:
            await asyncio.wait_for(everyone.wait(), 10)
        if index == 1 and request.query.get("stall_one"):
            await asyncio.sleep(1)
        return web.Response(status=500 if index == 2 else 409 if index % 2 else 200)

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", arrived
    finally:
        await runner.cleanup()


async def test_the_load_generator_sends_on_schedule_and_times_each_request_from_its_due_time(
    server: tuple[str, list[str]],
) -> None:
    url, arrived = server
    async with aiohttp.ClientSession() as session:
        result = await open_loop(session, "GET", lambda i: f"{url}?i={i}&n=20", rate=100, seconds=0.2)
    assert result.sent == len(result.latencies) == 20 and sorted(arrived, key=int) == [str(i) for i in range(20)]
    assert result.outcomes == Counter({"200": 9, "409": 10, "500": 1}) and result.errors == 1
    # Request 0 was answered only after request 19 arrived, which was not due before 0.19 s after request 0.
    assert max(result.latencies) >= 0.18


async def test_a_request_unanswered_in_time_counts_as_a_timeout_error(
    server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = server
    monkeypatch.setattr(load_generator, "TIMEOUT_S", 0.3)
    async with aiohttp.ClientSession() as session:
        result = await open_loop(session, "GET", lambda i: f"{url}?i={i + 1}&n=3&stall_one=1", rate=100, seconds=0.03)
    assert result.outcomes == Counter({"timeout": 1, "500": 1, "409": 1}) and result.errors == 2
    assert max(result.latencies) >= 0.3


@pytest.mark.integration
async def test_the_crawl_of_a_bench_catalog_finds_the_counts_the_benchmarks_expect(database: str) -> None:
    catalog = Catalog(schemas=3, tables=25, columns=4)  # 9, 8 and 8 tables: an uneven share
    source = await ensure_catalog(database, catalog)
    assets = await crawl_all(source_for(source, includeSchemas=catalog.schema_names[:2]))
    assert len(assets) == catalog.stored_assets([0, 1])
    assert sum(counted(asset) for asset in assets.values()) == catalog.counted_assets([0, 1])  # a run's figures
    kinds = Counter(asset["kind"] for asset in assets.values())
    assert kinds == {"database": 1, "schema": 2, "table": 17, "view": 2, "column": 17 * 4 + 2 * 2}
    t3 = assets[f"{catalog.database}/s001/t3"]["attributes"]
    assert (t3["comment"], t3["foreignKeys"][0]["references"]["table"]) == ("table number 3", "t2")


@pytest.mark.integration
async def test_a_complete_bench_catalog_is_reused_not_built_again(database: str) -> None:
    catalog = Catalog(schemas=2, tables=4, columns=3)
    source = await ensure_catalog(database, catalog)
    conn = await asyncpg.connect(source)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS s000.left_by_an_earlier_run ()")
        assert await ensure_catalog(database, catalog) == source
        assert await conn.fetchval("SELECT to_regclass('s000.left_by_an_earlier_run') IS NOT NULL")
    finally:
        await conn.close()
