-- Uploaded metadata (Secoda CSV/JSONL imports, dbt Core artifacts) and lineage edges (issue 7).

-- An upload is stored once, validated; the run that imports it carries its id (run.requested.v1
-- upload_id), never the bytes. format: file_csv | file_jsonl | dbt_core (the connector plug-in that
-- reads it). queued: a CSV/JSONL import waiting for the integration's one active run slot (imports
-- are never refused with 409: they wait their turn, oldest first). A dbt upload is not queued: it is
-- the integration's latest pair of artifacts until a trigger starts a sync of it.
CREATE TABLE uploads (
    id             uuid PRIMARY KEY,
    seq            bigserial NOT NULL UNIQUE, -- the queue's order: assigned as it is stored, under the integration's lock
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    format         text NOT NULL,
    queued         boolean NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     text,                     -- principal id of the uploader (NULL: an org key without number)
    created_by_name text,                    -- the API key's name, for the run it starts
    size_bytes     bigint NOT NULL
);
CREATE INDEX uploads_queued ON uploads (integration_id, seq) WHERE queued;
CREATE INDEX uploads_by_integration ON uploads (integration_id, format, seq);

-- The files of an upload, one row per multipart part (resources_file, lineages_file, manifest, ...).
CREATE TABLE upload_parts (
    upload_id uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    part      text NOT NULL,
    content   bytea NOT NULL,
    PRIMARY KEY (upload_id, part)
);
ALTER TABLE upload_parts ALTER COLUMN content SET STORAGE EXTERNAL;  -- already compact text; no TOAST compression cost

ALTER TABLE runs ADD COLUMN upload_id uuid;  -- from run.requested.v1; no foreign key: uploads are pruned
CREATE INDEX runs_by_upload ON runs (upload_id) WHERE upload_id IS NOT NULL;

-- Lineage edges, a read model projected from run.lineage_reported.v1 events: the edges an integration
-- asserts are replaced by each successful full sync of it, and rebuilt by `rebuild`. Each end is an asset
-- (integration, key) that may belong to another integration (external lineage); an end whose asset is
-- gone is hidden by the read side, not deleted, so the edge shows again if the asset comes back.
CREATE TABLE lineage_edges (
    integration_id      uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,  -- asserted by
    from_integration_id uuid NOT NULL,
    from_key            text NOT NULL,
    to_integration_id   uuid NOT NULL,
    to_key              text NOT NULL,
    run_id              uuid NOT NULL,     -- the sync that asserted it (last)
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    -- The same name-based UUIDs as assets.object_id, and the edge's own (stable for the same ends).
    from_object_id uuid GENERATED ALWAYS AS (
        overlay(overlay(md5(from_integration_id::text || '/' || from_key) PLACING '3' FROM 13 FOR 1)
                PLACING '8' FROM 17 FOR 1)::uuid) STORED,
    to_object_id   uuid GENERATED ALWAYS AS (
        overlay(overlay(md5(to_integration_id::text || '/' || to_key) PLACING '3' FROM 13 FOR 1)
                PLACING '8' FROM 17 FOR 1)::uuid) STORED,
    id             uuid GENERATED ALWAYS AS (
        overlay(overlay(md5(integration_id::text || '|' || from_integration_id::text || '/' || from_key || '|'
                            || to_integration_id::text || '/' || to_key) PLACING '3' FROM 13 FOR 1)
                PLACING '8' FROM 17 FOR 1)::uuid) STORED,
    -- The id stands for the five columns (a name-based UUID of them): a key of two asset keys would not fit a btree row.
    PRIMARY KEY (id)
);
CREATE INDEX lineage_edges_by_integration ON lineage_edges (integration_id);
CREATE INDEX lineage_edges_from ON lineage_edges (from_object_id, created_at, id);
CREATE INDEX lineage_edges_to ON lineage_edges (to_object_id, created_at, id);
CREATE INDEX lineage_edges_listing ON lineage_edges (created_at, id);

-- Resources by id include columns: one index by id for every asset replaces the data objects' partial one.
CREATE INDEX assets_by_object_id ON assets (object_id);
DROP INDEX assets_objects_by_id;
-- External lineage matches tables of other integrations by name, case-insensitively.
CREATE INDEX assets_tables_by_lower_name ON assets (lower(name), integration_id)
    WHERE kind IN ('table', 'view', 'materialized_view', 'foreign_table') AND deleted_at IS NULL;
-- The Secoda catalog lists an integration's resources in creation order.
CREATE INDEX assets_catalog ON assets (integration_id, created_at, object_id) WHERE deleted_at IS NULL;
-- ... the children of one resource (a table's columns included), and everything a key sees, in the same order.
CREATE INDEX assets_catalog_by_parent ON assets (integration_id, parent_key, created_at, object_id)
    WHERE deleted_at IS NULL;
CREATE INDEX assets_catalog_all ON assets (created_at, object_id) WHERE deleted_at IS NULL;
