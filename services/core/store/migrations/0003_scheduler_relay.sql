-- A schedule the scheduler cannot evaluate, and outbox rows the relay can never publish.

-- Written by the scheduler when it cannot compute an integration's next fire (a cron that matches no
-- date, a time zone gone from tzdata, a row it cannot read): the row is skipped and retried a minute
-- later instead of stopping the due-check for everyone; cleared once the schedule evaluates again.
ALTER TABLE integrations
    ADD COLUMN schedule_error    text,
    ADD COLUMN schedule_error_at timestamptz;

-- Outbox rows that can never be published (larger than the broker accepts, unknown topic), moved
-- here with the reason so that the rows behind them keep flowing. Inspect with
--   SELECT id, topic, reason, dead_lettered_at FROM outbox_dead_letters ORDER BY id;
-- `value` is NULL for a referenced run log event (its envelope is rendered from run_events).
CREATE TABLE outbox_dead_letters (
    id                 bigint PRIMARY KEY,         -- the outbox row's id
    topic              text NOT NULL,
    key                bytea NOT NULL,
    value              bytea,
    run_event_position bigint,
    size_bytes         integer NOT NULL,           -- of the message as the relay tried to send it
    reason             text NOT NULL,
    created_at         timestamptz NOT NULL,       -- when the outbox row was written
    dead_lettered_at   timestamptz NOT NULL DEFAULT now()
);
