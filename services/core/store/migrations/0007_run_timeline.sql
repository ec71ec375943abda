-- Run timelines and live run event streams (issue 8).

-- What a timeline shows of a bulk event instead of its payload: counts, computed once as the row is written
-- (the payload is in memory then). Reading jsonb_array_length(payload) at read time would fetch and
-- decompress every asset batch of a run (hundreds of MB for a run of 400k assets) just to count it. An asset
-- batch's summary also says whether its upserted assets were new (`change`), for the run's changes listing.
-- NULL for every other type: the timeline shows their (small) payloads as they are.
-- Adding it rewrites run_events once (the expression is computed for every stored row).
-- (Built as text: jsonb_build_object is not immutable, which a generated column requires.)
ALTER TABLE run_events ADD COLUMN summary jsonb GENERATED ALWAYS AS (
    CASE type
        WHEN 'run.assets_changed.v1' THEN (
            '{"upserted": ' || jsonb_array_length(coalesce(payload -> 'upserted', '[]'::jsonb))::text
            || ', "deleted": ' || jsonb_array_length(coalesce(payload -> 'deleted', '[]'::jsonb))::text
            || ', "change": ' || coalesce(payload -> 'change', 'null'::jsonb)::text || '}')::jsonb
        WHEN 'run.lineage_reported.v1' THEN (
            '{"edges": ' || jsonb_array_length(coalesce(payload -> 'edges', '[]'::jsonb))::text || '}')::jsonb
    END
) STORED;

-- Every committed run event wakes the API's stream listeners: the notification carries the event's position
-- only (they read the row). A trigger rather than each writer (projector, API, scheduler's reaper): no
-- writer can forget it, and NOTIFY is delivered only if the transaction commits.
CREATE FUNCTION notify_run_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('run_events', NEW.position::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER run_events_notify AFTER INSERT ON run_events FOR EACH ROW EXECUTE FUNCTION notify_run_event();
