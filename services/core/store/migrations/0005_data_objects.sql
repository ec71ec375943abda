-- Data objects, settings overrides, tasks and connection health (the Immuta dialects, issue 6).

-- Principals and integrations get small integer ids: Immuta's v1 API shows users and native
-- integrations as integers (createdBy, creator.id, nativeIntegrationId).
ALTER TABLE api_keys ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY;
CREATE UNIQUE INDEX api_keys_number ON api_keys (number);
ALTER TABLE integrations
    ADD COLUMN number           bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN created_by       text,          -- principal id (the API key's number) or NULL: system
    ADD COLUMN updated_by       text,
    -- The last connection validation (`_validate`): the connection state is UNHEALTHY when the more
    -- recent of this and the last finished sync failed.
    ADD COLUMN health_ok        boolean,
    ADD COLUMN health_message   text,
    ADD COLUMN health_checked_at timestamptz;

-- What a run is (the task view of runs). All of it comes from run.requested.v1, so rebuild restores it.
--   kind: sync (a crawl by a connector), delete (data objects removed by the control plane),
--         settings (a settings change recorded as a task)
--   scope: the object key the run is limited to (NULL: the whole connection); force_recursive: a sync
--         that also crawls inactive subtrees
ALTER TABLE runs
    ADD COLUMN kind            text NOT NULL DEFAULT 'sync',
    ADD COLUMN task_id         uuid,
    ADD COLUMN scope           text,
    ADD COLUMN force_recursive boolean NOT NULL DEFAULT false,
    ADD COLUMN created_by      text,           -- principal id of whoever requested it; NULL: system
    ADD COLUMN canceled_by     text,           -- principal id of whoever requested its cancellation
    ADD COLUMN updated_at      timestamptz;
UPDATE runs SET task_id = id, updated_at = coalesce(completed_at, started_at, requested_at);
CREATE UNIQUE INDEX runs_by_task ON runs (task_id);
CREATE INDEX runs_by_integration_kind ON runs (integration_id, kind, requested_at DESC, id DESC);

-- Data objects are the non-column assets; they get a deterministic id (a name-based UUID of the
-- integration and the asset key), so an object keeps its id across crawls, deletion and rediscovery.
-- The root (connection) and the database are objects too; the database is an asset from now on.
ALTER TABLE assets
    ADD COLUMN object_id  uuid GENERATED ALWAYS AS (
        overlay(overlay(md5(integration_id::text || '/' || asset_key) PLACING '3' FROM 13 FOR 1)
                PLACING '8' FROM 17 FOR 1)::uuid) STORED,
    ADD COLUMN created_at timestamptz,
    ADD COLUMN updated_at timestamptz;
CREATE INDEX assets_objects_by_id ON assets (object_id) WHERE kind <> 'column';
CREATE INDEX assets_objects_by_parent ON assets (integration_id, parent_key, name, object_id)
    WHERE kind <> 'column' AND deleted_at IS NULL;
CREATE INDEX assets_objects_by_name ON assets (integration_id, name, object_id)
    WHERE kind <> 'column' AND deleted_at IS NULL;

-- Settings overrides set on a data object itself ('' is the connection). NULL: not overridden here.
-- Configuration, not a read model: rebuild leaves it alone. Keys compare bytewise (COLLATE "C"), so a
-- subtree is the key range [k || '/', k || '0').
CREATE TABLE object_settings (
    integration_id        uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    object_key            text COLLATE "C" NOT NULL,
    is_active             boolean,
    activate_new_children boolean,
    data_owners           jsonb,
    infrastructure_admins jsonb,
    updated_at            timestamptz NOT NULL,
    updated_by            text,
    PRIMARY KEY (integration_id, object_key)
);

-- When a sync last listed each scope it crawled ('' = the whole connection): lastCrawled/lastSyncedAt
-- of an object is the latest of its own scope and its ancestors'; of an inactive object, the latest
-- forceRecursive one (others leave inactive subtrees alone). A read model of successful syncs.
CREATE TABLE sync_scopes (
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    scope          text COLLATE "C" NOT NULL,
    synced_at      timestamptz NOT NULL,
    forced_at      timestamptz,
    PRIMARY KEY (integration_id, scope)
);

-- Assets merged before this migration: their times are those of the runs that created and last changed them.
UPDATE assets a SET created_at = c.completed_at, updated_at = u.completed_at
FROM runs c, runs u WHERE c.id = a.created_run_id AND u.id = a.updated_run_id;

-- The database is an asset from now on (parent '': the connection), the parent of its schemas; crawls
-- before this migration did not report it. (Its fingerprint is recomputed by the next crawl.)
INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes, created_run_id,
                    updated_run_id, created_at, updated_at)
SELECT DISTINCT ON (a.integration_id) a.integration_id, split_part(a.asset_key, '/', 1), 'database',
       coalesce(i.configuration ->> 'database', split_part(a.asset_key, '/', 1)), '', '', '{}'::jsonb,
       a.created_run_id, a.updated_run_id, a.created_at, a.updated_at
FROM assets a JOIN integrations i ON i.id = a.integration_id
WHERE a.kind = 'schema' AND a.deleted_at IS NULL
ORDER BY a.integration_id, a.created_at
ON CONFLICT (integration_id, asset_key) DO NOTHING;
UPDATE assets SET parent_key = split_part(asset_key, '/', 1) WHERE kind = 'schema' AND parent_key IS NULL;
