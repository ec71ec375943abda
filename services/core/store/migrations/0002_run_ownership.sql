-- Run ownership (fencing), per-partition projector progress, dead letters, the deletion fail-safe.

-- The connector claim that started a run (from run.started.v1); only it may report for the run.
ALTER TABLE runs ADD COLUMN connector_id text, ADD COLUMN attempt integer;

-- Which connector instance executes a run, claimed synchronously before it starts: two instances that
-- both received the run's request (a rebalance) can never both start it. Operational, like heartbeats:
-- deleted when the run ends, kept by rebuild, no foreign key (TRUNCATE runs must not cascade here).
CREATE TABLE run_claims (
    run_id       uuid PRIMARY KEY,
    connector_id text NOT NULL,
    attempt      integer NOT NULL,
    claimed_at   timestamptz NOT NULL
);

-- How far the projector has applied each partition of the connector reports: every report acknowledged
-- by the broker before caught_up_at is in the database. The reaper measures silence against the
-- oldest partition, so a paused or lagging projector (or one of several replicas) never fails healthy runs.
CREATE TABLE projector_progress (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    caught_up_at timestamptz NOT NULL,
    PRIMARY KEY (topic, partition)
);
DROP TABLE projector_status;

-- Connector reports that could not be parsed or applied (the run they name is ended FAILED saying so).
CREATE TABLE report_dead_letters (
    id             bigserial PRIMARY KEY,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    "offset"       bigint NOT NULL,
    run_id         uuid,
    integration_id uuid,
    event_id       uuid,
    type           text,
    reason         text NOT NULL,
    value          bytea,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, partition, "offset")
);
CREATE INDEX report_dead_letters_by_run ON report_dead_letters (run_id) WHERE run_id IS NOT NULL;

-- A run that would mark more than this share (percent) of an integration's live assets deleted withholds
-- the deletions instead (a schema filter or grant change that hides the catalog is not a deletion).
ALTER TABLE integrations ADD COLUMN fail_safe_threshold double precision NOT NULL DEFAULT 20
    CHECK (fail_safe_threshold >= 0 AND fail_safe_threshold <= 100);
