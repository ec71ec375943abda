"""A synthetic run log for the rebuild benchmark, generated set-based in SQL: integrations, their daily runs
(`g_runs`) and each run's events (`g_events`, payloads built as they are written), valid for the run state machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

EVENTS_PER_INTEGRATION = 400
EVENTS_PER_RUN = 6.8  # the mix below: 85% of 7.2, 10% of 5, 5% of 3

# Asset j of a catalog: every 20th a table, the others its columns, under 10 schemas; its fingerprint depends on the
# run that reported it (r), so each run's batch changes what it names.
_ASSET = """
CREATE FUNCTION pg_temp.bench_asset(j bigint, r bigint) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN j % 20 = 0 THEN jsonb_build_object(
    'key', 'db/s' || (j / 20 % 10) || '/t' || (j / 20), 'kind', 'table', 'name', 't' || (j / 20),
    'parent_key', 'db/s' || (j / 20 % 10), 'fingerprint', md5(j || '/' || r),
    'attributes', jsonb_build_object('comment', 'Table number ' || (j / 20)))
ELSE jsonb_build_object(
    'key', 'db/s' || (j / 20 % 10) || '/t' || (j / 20) || '/c' || (j % 20), 'kind', 'column', 'name', 'c' || (j % 20),
    'parent_key', 'db/s' || (j / 20 % 10) || '/t' || (j / 20), 'fingerprint', md5(j || '/' || r),
    'attributes', jsonb_build_object('data_type', 'integer', 'nullable', true, 'ordinal', j % 20))
END
$$
"""

_INTEGRATIONS = """
CREATE TEMP TABLE g_integrations AS
SELECT gen_random_uuid() AS id, n, CASE WHEN n % 8 = 0 THEN 2000 ELSE 150 END AS assets, n * 37 % 80000 AS offset_s
FROM generate_series(1, $1::int) AS n
"""

# Daily runs, each over well within a day: one active run per integration at any time.
_RUNS = """
CREATE TEMP TABLE g_runs AS
SELECT i.id AS integration_id, r.r, gen_random_uuid() AS run_id, i.assets,
       $2::timestamptz + make_interval(days => r.r, secs => i.offset_s) AS t0,
       CASE WHEN r.r = 1 THEN 'first'
            WHEN (i.n * 7919 + r.r * 104729) % 100 < 85 THEN 'success'
            WHEN (i.n * 7919 + r.r * 104729) % 100 < 95 THEN 'failed' ELSE 'cancelled' END AS outcome
FROM g_integrations i CROSS JOIN generate_series(1, $1::int) AS r(r)
"""

_EVENTS = """
CREATE TEMP TABLE g_events AS
SELECT g.*, s.kind, s.seq::int AS seq, g.t0 + make_interval(secs => s.seq * 2) AS t,
       CASE WHEN g.outcome = 'first' THEN s.seq - 3 ELSE 1 END AS b
FROM g_runs g CROSS JOIN LATERAL unnest(CASE g.outcome
    WHEN 'first' THEN ARRAY['requested', 'started', 'progressed']
                      || array_fill('batch'::text, ARRAY[(g.assets + 999) / 1000])
                      || ARRAY['lineage', 'progressed', 'succeeded']
    WHEN 'success' THEN ARRAY['requested', 'started', 'progressed', 'batch', 'lineage']
                        || CASE WHEN g.r % 5 = 0 THEN ARRAY['warnings'] ELSE ARRAY[]::text[] END
                        || ARRAY['progressed', 'succeeded']
    WHEN 'failed' THEN ARRAY['requested', 'started', 'progressed', 'batch', 'failed']
    ELSE ARRAY['requested', 'cancel_requested', 'cancelled'] END) WITH ORDINALITY AS s(kind, seq)
"""

_COUNTS = """jsonb_build_object('assets_processed', CASE WHEN e.outcome = 'first' THEN e.assets ELSE 20 END,
    'assets_created', CASE WHEN e.outcome = 'first' THEN e.assets ELSE 0 END,
    'assets_updated', CASE WHEN e.outcome = 'first' THEN 0 ELSE 20 END, 'assets_deleted', 0)"""

_PAYLOAD = f"""CASE e.kind
    WHEN 'requested' THEN jsonb_build_object('trigger', 'schedule', 'kind', 'sync', 'task_id', e.run_id)
    WHEN 'started' THEN '{{"connector_id": "bench-connector", "attempt": 1}}'::jsonb
    WHEN 'progressed' THEN jsonb_build_object('counts', {_COUNTS}, 'message', 'Crawling')
    WHEN 'batch' THEN CASE WHEN e.outcome = 'first' THEN jsonb_build_object(
            'upserted', (SELECT jsonb_agg(pg_temp.bench_asset(j, 1))
                         FROM generate_series((e.b - 1) * 1000, least(e.b * 1000, e.assets) - 1) AS j),
            'deleted', '[]'::jsonb, 'change', 'created')
        ELSE jsonb_build_object(
            'upserted', (SELECT jsonb_agg(pg_temp.bench_asset((e.r * 20 + k) % e.assets, e.r))
                         FROM generate_series(0, 19) AS k),
            'deleted', CASE WHEN e.r % 4 = 0 THEN jsonb_build_array(pg_temp.bench_asset(e.r * 7919 % e.assets, 0)
                                                                     ->> 'key') ELSE '[]'::jsonb END,
            'change', 'updated') END
    WHEN 'lineage' THEN jsonb_build_object('edges', (SELECT jsonb_agg(jsonb_build_object(
            'from_integration_id', e.integration_id, 'from_key', pg_temp.bench_asset(k * 20, 0) ->> 'key',
            'to_integration_id', e.integration_id, 'to_key', pg_temp.bench_asset(k * 20 + 20, 0) ->> 'key'))
        FROM generate_series(0, 4) AS k))
    WHEN 'warnings' THEN '{{"warnings": ["permission denied for table t3"], "dropped": 0}}'::jsonb
    WHEN 'cancel_requested' THEN '{{"requested_by": "bench"}}'::jsonb
    ELSE jsonb_build_object('counts', {_COUNTS}, 'message', 'Done', 'reaped', false)
END"""

# Written in time order (so positions follow it); stream positions are numbered set-based afterwards instead of by the
# per-row commit trigger, which a bulk load would only slow down.
_WRITE = f"""
INSERT INTO run_events (run_id, seq, event_id, integration_id, type, occurred_at, payload)
SELECT e.run_id, e.seq, gen_random_uuid(), e.integration_id,
       'run.' || CASE e.kind WHEN 'batch' THEN 'assets_changed' WHEN 'lineage' THEN 'lineage_reported'
                             WHEN 'warnings' THEN 'warnings_reported' ELSE e.kind END || '.v1',
       e.t, {_PAYLOAD}
FROM g_events e
WHERE e.t > $1 AND ($2::timestamptz IS NULL OR e.t < $2)
ORDER BY e.t, e.integration_id, e.seq
"""


@dataclass(frozen=True)
class Generated:
    integrations: int
    runs: int
    events: int


async def generate_runs(conn: asyncpg.Connection, events: int) -> Generated:
    """The integrations (in `integrations` too) and the plan of every run and event, about `events` of them."""
    integrations = max(4, events // EVENTS_PER_INTEGRATION)
    runs = max(2, round(EVENTS_PER_INTEGRATION / EVENTS_PER_RUN))
    await conn.execute(_ASSET)
    await conn.execute(_INTEGRATIONS, integrations)
    await conn.execute(
        "INSERT INTO integrations (id, external_id, name, source) "
        "SELECT id, 'bench-' || n, 'Bench ' || n, 'postgres' FROM g_integrations"
    )
    start = await conn.fetchval("SELECT now() - make_interval(days => $1::int + 2)", runs)
    await conn.execute(_RUNS, runs, start)
    await conn.execute(_EVENTS)
    planned = await conn.fetchval("SELECT count(*) FROM g_events")
    return Generated(integrations, integrations * runs, planned)


async def write_events(conn: asyncpg.Connection, before: datetime | None) -> int:
    """Write the planned events not written yet, up to `before` (None: all), numbered for streams. Returns how many."""
    after = await conn.fetchval("SELECT coalesce(max(occurred_at), '-infinity') FROM run_events")
    last = await conn.fetchval("SELECT coalesce(max(position), 0) FROM run_events")
    async with conn.transaction():
        await conn.execute("ALTER TABLE run_events DISABLE TRIGGER run_events_stream")
        status = await conn.execute(_WRITE, after, before)
        await conn.execute("ALTER TABLE run_events ENABLE TRIGGER run_events_stream")
        await conn.execute(
            "INSERT INTO run_event_stream (stream_position, position) "
            "SELECT nextval('run_event_stream_seq'), position FROM run_events WHERE position > $1 ORDER BY position",
            last,
        )
    await conn.execute("ANALYZE run_events; ANALYZE run_event_stream")
    return int(status.split()[-1])
