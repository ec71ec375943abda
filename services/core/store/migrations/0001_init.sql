-- Initial schema: access control, integrations, the run log and its read models, assets, outbox.

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    external_id text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    key_hash   bytea NOT NULL UNIQUE,          -- sha256 of the key; the key itself is never stored
    org_owner  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE api_key_teams (
    api_key_id  uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    team_id     uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    permissions text[] NOT NULL,               -- e.g. {INGESTION_VIEW, INGESTION_EDIT}
    PRIMARY KEY (api_key_id, team_id)
);

CREATE TABLE integrations (
    id              uuid PRIMARY KEY,
    external_id     text NOT NULL UNIQUE,
    name            text NOT NULL,
    source          text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    owning_team_id  uuid REFERENCES teams (id) ON DELETE RESTRICT,
    configuration   jsonb NOT NULL DEFAULT '{}'::jsonb,
    credentials_enc bytea,                     -- Fernet token of the credentials JSON
    schedule        jsonb,                     -- {"cron": ..., "intervalSeconds": ..., "timezone": ...}
    next_fire_at    timestamptz,               -- maintained by the scheduler
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integrations_team ON integrations (owning_team_id, external_id);
CREATE INDEX integrations_due ON integrations (next_fire_at) WHERE enabled AND next_fire_at IS NOT NULL;

-- The run log: the source of truth for every run. (run_id, seq) catches concurrent writers.
CREATE TABLE run_events (
    position       bigserial NOT NULL UNIQUE,  -- global order, used by rebuild
    run_id         uuid NOT NULL,
    seq            integer NOT NULL,
    event_id       uuid NOT NULL UNIQUE,
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    type           text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    payload        jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Events that arrived but did not apply (after a terminal state, out of order): recorded, never applied.
-- No foreign keys: an event for a deleted integration or an unknown run must still be recordable.
CREATE TABLE run_events_ignored (
    event_id       uuid PRIMARY KEY,
    run_id         uuid NOT NULL,
    integration_id uuid NOT NULL,
    type           text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    reason         text NOT NULL
);

-- Read model of runs, rebuilt from run_events. Also the atomic claim: one active run per integration.
CREATE TABLE runs (
    id               uuid PRIMARY KEY,
    integration_id   uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    status           text NOT NULL,
    trigger          text NOT NULL,
    requested_at     timestamptz NOT NULL,
    started_at       timestamptz,
    completed_at     timestamptz,
    message          text,
    assets_processed bigint NOT NULL DEFAULT 0,
    assets_created   bigint NOT NULL DEFAULT 0,
    assets_updated   bigint NOT NULL DEFAULT 0,
    assets_deleted   bigint NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    version          integer NOT NULL
);
CREATE UNIQUE INDEX runs_one_active_per_integration ON runs (integration_id) WHERE status IN ('QUEUED', 'RUNNING');
CREATE INDEX runs_by_integration ON runs (integration_id, requested_at DESC, id DESC);
CREATE INDEX runs_by_integration_status ON runs (integration_id, status, requested_at DESC, id DESC);
CREATE INDEX runs_active ON runs (status, requested_at) WHERE status IN ('QUEUED', 'RUNNING');

-- When the projector last had no backlog. Heartbeats reach Postgres through it, so the reaper judges
-- silence against this time, never against a lagging (or stopped) projector.
CREATE TABLE projector_status (
    id            integer PRIMARY KEY CHECK (id = 1),
    caught_up_at  timestamptz NOT NULL
);

-- Liveness of running runs (operational, not part of the log).
CREATE TABLE run_heartbeats (
    run_id       uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    connector_id text NOT NULL,
    last_at      timestamptz NOT NULL
);

-- Discovered assets per integration: the state after the last successful run (rebuilt from the log).
-- No foreign key to integrations: a first crawl inserts 10,000s of rows and the per-row FK check was a
-- quarter of that merge; deleting an integration deletes its assets explicitly.
CREATE TABLE assets (
    integration_id  uuid NOT NULL,
    asset_key       text NOT NULL,
    kind            text NOT NULL,
    name            text NOT NULL,
    parent_key      text,
    fingerprint     text NOT NULL,
    attributes      jsonb NOT NULL,
    created_run_id  uuid NOT NULL,
    updated_run_id  uuid NOT NULL,
    deleted_run_id  uuid,
    deleted_at      timestamptz,
    PRIMARY KEY (integration_id, asset_key)
);

-- Transactional outbox: rows written with the state change, published to Kafka by the relay.
-- A run log event is referenced by position rather than copied (asset batches are large).
CREATE TABLE outbox (
    id                 bigserial PRIMARY KEY,
    topic              text NOT NULL,
    key                bytea NOT NULL,
    value              bytea,
    run_event_position bigint,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((value IS NULL) <> (run_event_position IS NULL))
);

-- Every scheduled fire, including the ones skipped because a run was active.
CREATE TABLE schedule_fires (
    id             bigserial PRIMARY KEY,
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    due_at         timestamptz NOT NULL,
    fired_at       timestamptz NOT NULL DEFAULT now(),
    outcome        text NOT NULL,            -- fired | skipped_active
    run_id         uuid
);
CREATE INDEX schedule_fires_by_integration ON schedule_fires (integration_id, id DESC);
