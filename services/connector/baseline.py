"""The store's side of a crawl's diff, asked of PostgreSQL batch by batch: nothing of it is held in the connector.

For each crawl batch: which of its keys the store holds live, with which fingerprint (one indexed query), the keys
recorded as seen in a temporary table of the run's connection. After a complete crawl: the live keys it did not
report, by one anti-join. A first crawl (nothing live) asks nothing at all.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from services.connector.sources.base import CONTAINER_KIND
from services.core.objects import CrawlScope

# One primary-key probe per key, whatever the statistics say: right after a first crawl `assets` may not be analyzed
# yet, and with `asset_key = ANY(...)` the planner then scanned every asset of the integration per batch (0.5 s a
# batch at 40,000 assets). The lateral subquery, kept apart by OFFSET 0, can only be a lookup by the full key.
_PREVIOUS = """
WITH seen AS (INSERT INTO {seen} (key) SELECT unnest($2::text[]))
SELECT a.asset_key, a.fingerprint FROM unnest($2::text[]) AS k(key)
CROSS JOIN LATERAL (SELECT asset_key, fingerprint, deleted_at FROM assets
                    WHERE integration_id = $1 AND asset_key = k.key OFFSET 0) AS a
WHERE a.deleted_at IS NULL
"""
_GONE = """
SELECT a.asset_key FROM assets a
WHERE a.integration_id = $1 AND a.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM {seen} s WHERE s.key = a.asset_key)
ORDER BY a.asset_key
"""


class Baseline:
    """The live assets of an integration's last successful runs, within a crawl's scope."""

    def __init__(self, conn: asyncpg.Connection, integration_id: uuid.UUID, scope: CrawlScope, live: int) -> None:
        self._conn = conn
        self._integration_id = integration_id
        self.scope = scope
        self.live = live  # how many counted live assets the scope covers (diff.counted: containers are not)
        self._seen = f"pg_temp.seen_{uuid.uuid4().hex}"

    @classmethod
    @asynccontextmanager
    async def opened(cls, pool: asyncpg.Pool, integration_id: uuid.UUID, scope: CrawlScope) -> AsyncIterator[Baseline]:
        async with pool.acquire() as conn:
            baseline = cls(conn, integration_id, scope, await _live(conn, integration_id, scope))
            if baseline.live:
                await conn.execute(f"CREATE TEMP TABLE {baseline._seen} (key text NOT NULL)")
            try:
                yield baseline
            finally:
                if baseline.live and not conn.is_closed():
                    await conn.execute(f"DROP TABLE IF EXISTS {baseline._seen}")

    async def previous(self, keys: list[str]) -> dict[str, str]:
        """The live fingerprints of `keys` (those the store holds), recording the keys as seen."""
        if not self.live:
            return {}
        rows = await self._conn.fetch(_PREVIOUS.format(seen=self._seen), self._integration_id, keys)
        return {r["asset_key"]: r["fingerprint"] for r in rows}

    async def gone(self, chunk: int) -> AsyncIterator[list[str]]:
        """The live keys in scope the crawl did not report, in key order, `chunk` at a time."""
        if not self.live:
            return
        await self._conn.execute(f"ANALYZE {self._seen}")  # a temporary table has no statistics: a hash anti-join
        keys: list[str] = []
        async with self._conn.transaction():
            async for row in self._conn.cursor(_GONE.format(seen=self._seen), self._integration_id, prefetch=chunk):
                if self.scope.everything or self.scope.covers(row["asset_key"]):
                    keys.append(row["asset_key"])
                    if len(keys) >= chunk:
                        yield keys
                        keys = []
        if keys:
            yield keys


# diff.counted, in SQL: the level above schemas (a container at the root) is not counted.
_COUNTED_LIVE = (
    "FROM assets WHERE integration_id = $1 AND deleted_at IS NULL "
    f"AND NOT (kind = '{CONTAINER_KIND}' AND parent_key = '')"
)


async def _live(conn: asyncpg.Connection, integration_id: uuid.UUID, scope: CrawlScope) -> int:
    if scope.everything:
        count: int = await conn.fetchval(f"SELECT count(*) {_COUNTED_LIVE}", integration_id)
        return count
    live = 0  # a sub-path or inactive subtrees: the scope is a rule of keys, counted as the keys stream by
    async with conn.transaction():
        async for row in conn.cursor(f"SELECT asset_key {_COUNTED_LIVE}", integration_id):
            live += scope.covers(row["asset_key"])
    return live
