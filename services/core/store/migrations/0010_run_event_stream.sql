-- Live streams resume in commit order (issue 8). A run event's `position` is taken when it is inserted, so two
-- transactions can commit in the other order: a client that saw the later-numbered event first and resumed
-- after it (Last-Event-ID) would never get the earlier one. The stream position is taken at commit instead:
-- a deferred trigger takes one transaction-level advisory lock (held until the commit is visible) and numbers
-- the transaction's events then, so every event committed later has a larger stream position than any a
-- reader has seen. Writers of run events serialise only that last step of their transactions.
CREATE TABLE run_event_stream (
    stream_position bigint PRIMARY KEY,
    position        bigint NOT NULL UNIQUE REFERENCES run_events (position) ON DELETE CASCADE
);
CREATE SEQUENCE run_event_stream_seq OWNED BY run_event_stream.stream_position;

-- Events already in the log keep their position as their stream position (all committed, long ago).
INSERT INTO run_event_stream (stream_position, position) SELECT position, position FROM run_events;
SELECT setval('run_event_stream_seq', coalesce((SELECT max(position) FROM run_events), 0) + 1, false);

DROP TRIGGER run_events_notify ON run_events;
DROP FUNCTION notify_run_event();

CREATE FUNCTION number_run_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    numbered bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM run_events WHERE position = NEW.position) THEN
        RETURN NULL;  -- deleted again in its own transaction (its integration was deleted): nothing to stream
    END IF;
    PERFORM pg_advisory_xact_lock(7215002);  -- released once this commit is visible: numbers follow commits
    numbered := nextval('run_event_stream_seq');
    INSERT INTO run_event_stream (stream_position, position) VALUES (numbered, NEW.position);
    PERFORM pg_notify('run_events', numbered::text);  -- delivered only if the transaction commits
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER run_events_stream AFTER INSERT ON run_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION number_run_event();
