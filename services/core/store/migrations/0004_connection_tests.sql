-- "Can a connector reach this source?": requested through the API, answered by a connector.
CREATE TABLE connection_tests (
    id             uuid PRIMARY KEY,
    integration_id uuid REFERENCES integrations (id) ON DELETE CASCADE,  -- NULL: a configuration not saved
    requested_by   text,
    requested_at   timestamptz NOT NULL,
    finished_at    timestamptz,
    status         text NOT NULL DEFAULT 'PENDING',                       -- PENDING | PASSED | FAILED
    message        text,
    duration_ms    integer,
    connector_id   text
);
CREATE INDEX connection_tests_by_integration ON connection_tests (integration_id, requested_at DESC)
    WHERE integration_id IS NOT NULL;
