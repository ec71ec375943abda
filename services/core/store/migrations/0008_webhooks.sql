-- Webhook notifications (issue 8): subscriptions, and a durable queue of deliveries with every attempt.

-- A subscription belongs to a team (its integrations' runs) or, with team_id NULL, to the organization
-- (every integration's runs; visible to organization-owner keys only), exactly as integrations are owned.
-- The signing secret is encrypted at rest with CREDENTIALS_KEY (the notifier needs it back to sign).
CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    team_id     uuid REFERENCES teams (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL,          -- run.failed | run.succeeded | run.cancelled | run.reaped
    description text,
    enabled     boolean NOT NULL DEFAULT true,
    secret_enc  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text                      -- the API key's name
);
CREATE INDEX webhooks_by_team ON webhooks (team_id, created_at);

-- One row per (subscription, run event): the notifier's consumer inserts it (ON CONFLICT DO NOTHING, so a
-- redelivered Kafka message adds nothing) before it commits the offset; its worker claims due rows with
-- FOR UPDATE SKIP LOCKED. The id is derived from (webhook, event): the receiver's idempotency key, the same on
-- every attempt and every redelivery. The body is rendered once: every attempt sends (and signs) the same bytes.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        uuid NOT NULL,        -- the run event notified of
    event_type      text NOT NULL,        -- the notification's type (run.failed, ...)
    run_id          uuid NOT NULL,
    integration_external_id text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'PENDING',  -- PENDING | DELIVERED | FAILED (attempts exhausted)
    attempts        int NOT NULL DEFAULT 0,
    -- When it is due; a claim moves it past the attempt's deadline (a lease): a notifier killed while delivering
    -- leaves the row PENDING, and it is due again once the lease ran out.
    next_attempt_at timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at DESC, id DESC);

-- Every attempt, recorded when it starts (so an attempt cut short by a crash still shows, without an outcome)
-- and completed with the receiver's status code or the error, and how long it took.
CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     int NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms int,
    status_code int,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);
