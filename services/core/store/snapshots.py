"""Snapshots of the read models the run log feeds (runs, assets, lineage edges, sync scopes) as of a stream position:
where `rebuild` starts, and what lets compaction drop asset payloads whose effects a snapshot holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

READ_MODELS = ("runs", "assets", "lineage_edges", "sync_scopes")
# One writer of snapshots (a compaction) or reader of them (a rebuild) at a time, across processes.
MAINTENANCE_LOCK = 7_215_003

_COLUMNS = """
SELECT quote_ident(a.attname) FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""

# A table's indexes that back no constraint (primary key, unique), by their definitions.
_SECONDARY_INDEXES = """
SELECT quote_ident(i.indexname) AS name, i.indexdef AS definition
FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = $1
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = to_regclass(quote_ident(i.indexname)))
ORDER BY i.indexname
"""

_PRIMARY_KEY = """
SELECT quote_ident(a.attname)
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = $1::regclass AND i.indisprimary AND a.attgenerated = ''
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


@dataclass(frozen=True)
class Snapshot:
    id: int
    stream_position: int  # the copies hold the effects of exactly the events numbered up to here
    taken_at: datetime
    rows: dict[str, int]  # read model -> rows copied


def copy_of(model: str) -> str:
    return f"run_log_snapshot_{model}"


async def latest(conn: asyncpg.Connection) -> Snapshot | None:
    row = await conn.fetchrow("SELECT * FROM run_log_snapshots ORDER BY id DESC LIMIT 1")
    if row is None:
        return None
    return Snapshot(row["id"], row["stream_position"], row["taken_at"], {m: row[m] for m in READ_MODELS})


async def take(conn: asyncpg.Connection, at: datetime) -> Snapshot:
    """Copy the read models in one REPEATABLE READ transaction. Its events are a prefix of the log in stream order
    (stream positions are numbered as transactions commit, under a lock held until the commit is visible: migration
    0010), so the copies hold exactly the effects of the events up to the largest stream position it sees. No new
    copy when no event was committed since the latest snapshot."""
    async with conn.transaction(isolation="repeatable_read"):
        position = await conn.fetchval("SELECT coalesce(max(stream_position), 0) FROM run_event_stream")
        previous = await latest(conn)
        if previous is not None and previous.stream_position == position:
            return previous
        rows = {}
        for model in READ_MODELS:
            columns = ", ".join(await _columns(conn, model))
            await conn.execute(f"DROP TABLE IF EXISTS {copy_of(model)}")
            status = await conn.execute(f"CREATE TABLE {copy_of(model)} AS SELECT {columns} FROM {model}")
            rows[model] = int(status.split()[-1])  # "SELECT n"
        snapshot_id = await conn.fetchval(
            "INSERT INTO run_log_snapshots (stream_position, taken_at, runs, assets, lineage_edges, sync_scopes) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            position, at, *(rows[m] for m in READ_MODELS),
        )  # fmt: skip
    return Snapshot(snapshot_id, position, at, rows)


async def restore(conn: asyncpg.Connection) -> Snapshot | None:
    """Fill the (emptied) read models from the latest snapshot's copies, set-based, leaving out integrations deleted
    since. Columns a read model gained after the snapshot get their defaults; generated columns are computed again.
    Secondary indexes are built once the rows are in (sorted, a fraction of the cost of growing eight indexes row by
    row); the primary keys stay, for the replay's merges that follow. Inside the rebuild's transaction: a failure
    leaves every index as it was."""
    snapshot = await latest(conn)
    if snapshot is None:
        return None
    await conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for model in READ_MODELS:
        secondary = await conn.fetch(_SECONDARY_INDEXES, model)
        for index in secondary:
            await conn.execute(f"DROP INDEX {index['name']}")
        kept = set(await _columns(conn, copy_of(model)))
        columns = [c for c in await _columns(conn, model) if c in kept]
        # In primary key order when the copy has the key's columns: inserted in its order, the key's index is filled
        # page after page instead of at random.
        key = [c for c in await _columns(conn, model, _PRIMARY_KEY) if c in kept]
        order = f" ORDER BY {', '.join(key)}" if key else ""
        await conn.execute(
            f"INSERT INTO {model} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {copy_of(model)} c "
            f"WHERE EXISTS (SELECT 1 FROM integrations i WHERE i.id = c.integration_id){order}"
        )
        for index in secondary:
            await conn.execute(index["definition"])
    return snapshot


async def _columns(conn: asyncpg.Connection, table: str, query: str = "") -> list[str]:
    """A table's stored columns (not its generated ones), quoted, in their order; or those of its primary key."""
    return [r[0] for r in await conn.fetch(query or _COLUMNS, table)]
