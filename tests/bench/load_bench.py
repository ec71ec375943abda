"""Benchmark: the API under load while a large crawl runs.

On fresh services, first crawls of a catalog of BENCH_LOAD_TABLES tables in 10 schemas (default: the largest size
of BENCH_TABLES) run back to back, each by a fresh integration so that each is a full first crawl, for the whole
measurement. Meanwhile an open-loop load generator (load_generator.py) sends BENCH_LOAD_RATE requests/s (default
500) for BENCH_LOAD_SECONDS (default 60) to GET /api/integrations/{x}/runs/latest, then as many to
POST /api/integrations/{y}/run, round robin over integrations of their own (a 409 "a run is already active" is a
normal answer). Each window follows a warm-up at the same rate (BENCH_LOAD_WARMUP_SECONDS, default 3), printed and
not counted. Prints p50, p99, max, the achieved rate and the answers per status next to the targets. Fails if a
crawl that finished did not succeed with every asset, or if any run ended FAILED or reaped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import aiohttp
import asyncpg

from tests.bench.load_generator import LoadResult, open_loop
from tests.bench.source_catalog import Catalog, ensure_catalog, table_sizes
from tests.bench.support import (
    RUN_DEADLINE_S,
    Api,
    Figure,
    at_most,
    percentile,
    record,
    running_stack,
    runs_ended,
    verdict,
)
from tests.support import recreate_database

TABLES = int(os.environ.get("BENCH_LOAD_TABLES") or max(table_sizes()))  # the largest catalog measured
RATE = float(os.environ.get("BENCH_LOAD_RATE", "500"))
SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
WARMUP_SECONDS = float(os.environ.get("BENCH_LOAD_WARMUP_SECONDS", "3"))  # at the same rate, before the window
TARGETS_MS = {"GET": 10.0, "POST": 50.0}  # p99
POST_TARGETS = 10  # integrations the POSTs trigger, each crawling an empty selection: cheap runs of their own


class BackToBackCrawls:
    """First crawls of the big catalog, one after the other until stopped; the one running then is cancelled."""

    def __init__(self, api: Api, db: asyncpg.Connection, source: str, catalog: Catalog) -> None:
        self.api, self.db, self.source, self.catalog = api, db, source, catalog
        self.spans: list[tuple[float, float]] = []  # (trigger, end) of each crawl, time.perf_counter()
        self.running_since: float | None = None  # the trigger of the crawl still running
        self.outcomes: Counter[str] = Counter()
        self.first_triggered = asyncio.Event()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._crawl_until_stopped()
        finally:
            self.first_triggered.set()  # also when the first crawl could not start: nobody waits forever

    async def _crawl_until_stopped(self) -> None:
        expected = self.catalog.counted_assets(list(range(self.catalog.schemas)))
        while not self.stop.is_set():
            external_id = f"crawl-{len(self.spans)}"
            await self.api.create_postgres_integration(external_id, self.source, self.catalog.schema_names)
            self.running_since = time.perf_counter()
            run_id = await self.api.trigger(external_id)
            self.first_triggered.set()
            ended = asyncio.create_task(runs_ended(self.db, [run_id], interval=0.05))
            stopped = asyncio.create_task(self.stop.wait())
            await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not ended.done():
                await self.api.cancel(external_id)
            end = (await ended)[run_id]
            self.spans.append((self.running_since, end.seen_at))
            self.running_since = None
            self.outcomes[end.run["status"]] += 1
            if end.run["status"] != "CANCELLED":
                assert end.run["status"] == "SUCCESS" and end.run["assets_processed"] == expected, dict(end.run)

    def active_share(self, start: float, stop: float) -> float:
        """How much of [start, stop] a crawl of the big catalog was active (triggered, not yet ended)."""
        running = [(self.running_since, stop)] if self.running_since is not None else []
        return covered_share(self.spans + running, start, stop)


def covered_share(spans: list[tuple[float, float]], start: float, stop: float) -> float:
    """The share of [start, stop] that the (disjoint) spans cover."""
    return sum(max(0.0, min(stop, end) - max(start, began)) for began, end in spans) / (stop - start)


async def all_runs_ended(db: asyncpg.Connection) -> Counter[str]:
    """Wait until no run is active, then every run's outcome; a run ended FAILED or by the reaper fails the bench."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    while await db.fetchval("SELECT count(*) FROM runs WHERE status NOT IN ('SUCCESS', 'FAILED', 'CANCELLED')"):
        assert time.monotonic() < deadline, f"runs still active after {RUN_DEADLINE_S:g} s"
        await asyncio.sleep(0.1)
    ids = [row["id"] for row in await db.fetch("SELECT id FROM runs")]
    ended = await runs_ended(db, ids)
    wrong = [dict(end.run) for end in ended.values() if end.reaped or end.run["status"] == "FAILED"]
    assert not wrong, f"{len(wrong)} runs FAILED or reaped under load: {wrong[:5]}"
    return Counter(end.run["status"] for end in ended.values())


def report(method: str, path: str, result: LoadResult, crawl_share: float) -> None:
    p99_ms = percentile(result.latencies, 0.99) * 1000
    scenario = f"API under load ({result.rate:g}/s)"
    figure = at_most(scenario, f"{method} p99", p99_ms, TARGETS_MS[method], " ms",
                     f"answered at {result.answered_rate:.0f}/s")  # fmt: skip
    record(Figure(scenario, f"{method} errors", str(result.errors), "0", result.errors == 0))
    print(f"{method} {path}: {result.describe()}")
    print(f"  target p99 {figure.target}: {verdict(figure.met)}; a big crawl was active {crawl_share:.0%} of the "
          "window", flush=True)  # fmt: skip


def prioritise_load_generator() -> None:
    """Clients of the API run elsewhere: here the generator shares 2 cores with a busy crawl, and a late send
    would count as the server's latency. A higher priority (root only; the services keep theirs) keeps sends on
    time; the send lag printed shows how well."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except PermissionError:
        print("(not root: the load generator runs at normal priority)")


async def load(session: aiohttp.ClientSession, url: str, crawls: BackToBackCrawls) -> None:
    """GET the latest run of the first big crawl's integration, then POST runs of integrations of their own."""
    for method, path, url_of in (
        ("GET", "/api/integrations/crawl-0/runs/latest", lambda i: f"{url}/api/integrations/crawl-0/runs/latest"),
        ("POST", f"/api/integrations/post-{{0..{POST_TARGETS - 1}}}/run",
         lambda i: f"{url}/api/integrations/post-{i % POST_TARGETS}/run"),
    ):  # fmt: skip
        # A server that has just started opens its client connections and prepares its statements in the first
        # fraction of a second (latencies up to ~0.3 s measured on an idle stack): not the steady state asked for.
        warmup = await open_loop(session, method, url_of, RATE, WARMUP_SECONDS)
        print(f"{method} warm-up, {WARMUP_SECONDS:g} s not counted: {warmup.describe()}", flush=True)
        began = time.perf_counter()
        result = await open_loop(session, method, url_of, RATE, SECONDS)
        report(method, path, result, crawls.active_share(began, time.perf_counter()))


async def main() -> None:
    base = os.environ["DATABASE_URL"]
    catalog = Catalog(10, TABLES)
    source = await ensure_catalog(base, catalog)
    print(f"{RATE:g} requests/s for {SECONDS:g} s per endpoint, open loop (latency from each request's due time), "
          f"while first crawls of {TABLES} tables run back to back", flush=True)  # fmt: skip
    dsn = await recreate_database(base, "ingestion_bench")
    async with running_stack(dsn) as stack, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        api = Api(session, stack.url)
        prioritise_load_generator()
        db = await asyncpg.connect(dsn)
        try:
            for k in range(POST_TARGETS):
                await api.create_postgres_integration(f"post-{k}", source, ["no_such_schema"])
            crawls = BackToBackCrawls(api, db, source, catalog)
            crawling = asyncio.create_task(crawls.run())
            try:
                await crawls.first_triggered.wait()
                if crawling.done():
                    await crawling  # its error
                await load(session, stack.url, crawls)
                crawls.stop.set()
                await crawling
            finally:
                crawling.cancel()
            outcomes = await all_runs_ended(db)
        finally:
            await db.close()
    print(f"crawls of the big catalog: {dict(crawls.outcomes)} (the one running when the load ended cancelled); "
          f"all runs: {dict(outcomes)}, none FAILED or reaped")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
