-- Run log retention (issue 9): snapshots of the read models, and asset/lineage batches compacted behind them.

-- A snapshot is a copy of the read models the log feeds (runs, assets, lineage_edges, sync_scopes) as of a stream
-- position: exactly the effects of the events numbered at or before it (stream positions follow commits, migration
-- 0010, so the events one REPEATABLE READ transaction sees are a prefix of them). `rebuild` restores the latest
-- snapshot and replays only the events after it; an event at or before it may therefore lose its asset payload.
-- The copies are the tables run_log_snapshot_<read model>, made by CREATE TABLE AS when a snapshot is taken (so
-- they have the read model's columns of that day); only the latest snapshot's copies are kept. A migration that
-- adds a column to a read model restores it with its default from an older snapshot, until the next one.
CREATE TABLE run_log_snapshots (
    id              bigserial PRIMARY KEY,
    stream_position bigint NOT NULL,          -- the last event whose effects the copies hold
    taken_at        timestamptz NOT NULL,
    runs            bigint NOT NULL,          -- rows copied (for operators)
    assets          bigint NOT NULL,
    lineage_edges   bigint NOT NULL,
    sync_scopes     bigint NOT NULL
);

-- Runs whose asset and lineage batches were compacted: each batch's payload replaced by its counts
-- ({"upserted": n, "deleted": n, "change": ..., "compacted": true}, {"edges": n, "compacted": true}), all of a
-- run's batches in one transaction. Lifecycle events (requested, started, progressed, warnings, the outcome) are
-- never touched. No foreign key: a compaction must not take locks on integrations (a concurrent delete of one
-- would deadlock with it); rows of deleted integrations are dropped by the next compaction.
CREATE TABLE run_log_compacted_runs (
    run_id         uuid PRIMARY KEY,
    integration_id uuid NOT NULL,
    snapshot_id    bigint NOT NULL,
    compacted_at   timestamptz NOT NULL,
    events         integer NOT NULL,          -- batches compacted
    bytes_before   bigint NOT NULL            -- their stored payload size (pg_column_size) before
);

-- A compacted batch's payload is its summary (counts, marked compacted): the summary is the payload then. The
-- expression is otherwise the one of migration 0007. Re-adding the column rewrites run_events once.
ALTER TABLE run_events DROP COLUMN summary;
ALTER TABLE run_events ADD COLUMN summary jsonb GENERATED ALWAYS AS (
    CASE
        WHEN type NOT IN ('run.assets_changed.v1', 'run.lineage_reported.v1') THEN NULL
        WHEN payload ? 'compacted' THEN payload
        WHEN type = 'run.assets_changed.v1' THEN (
            '{"upserted": ' || jsonb_array_length(coalesce(payload -> 'upserted', '[]'::jsonb))::text
            || ', "deleted": ' || jsonb_array_length(coalesce(payload -> 'deleted', '[]'::jsonb))::text
            || ', "change": ' || coalesce(payload -> 'change', 'null'::jsonb)::text || '}')::jsonb
        ELSE ('{"edges": ' || jsonb_array_length(coalesce(payload -> 'edges', '[]'::jsonb))::text || '}')::jsonb
    END
) STORED;
