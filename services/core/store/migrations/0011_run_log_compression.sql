-- Asset batches are most of the run log (a 20,000-table first crawl: 430 events of ~250 KB of jsonb). pglz, the
-- default TOAST compression, was the slowest part of storing them; lz4 compresses them in about a third of the time
-- and to a third of pglz's size (measured: 40 batches, 12 MB of JSON: pglz 2.4 MB, lz4 0.9 MB). Servers built
-- without lz4 keep pglz. Existing values stay as they are (the setting applies to values written from now on).
DO $$
BEGIN
    ALTER TABLE run_events ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'this server has no lz4: run_events keeps pglz';
END $$;
