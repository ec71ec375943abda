-- Each process's readiness, recorded by the process itself (issue 8): the API cannot reach other processes'
-- ops ports in a real deployment, but every process reaches the database. Upserted every few seconds from the
-- checks its /readyz runs (shared/ops.py); a row whose seen_at is older than a few of its own periods is a
-- process that stopped (shown stale). `interval_s` is the writer's period, so readers need no shared setting.
CREATE TABLE process_status (
    service    text NOT NULL,
    instance   text NOT NULL,
    ready      boolean NOT NULL,
    checks     jsonb NOT NULL,
    interval_s double precision NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL,
    PRIMARY KEY (service, instance)
);
-- Pruning (rows older than a day) scans by age.
CREATE INDEX process_status_seen ON process_status (seen_at);
