-- Connector breadth (issue 10): external tables (Glue, Snowflake, BigQuery) are table-level assets; lineage matches
-- them by name like the other table kinds.
DROP INDEX assets_tables_by_lower_name;
CREATE INDEX assets_tables_by_lower_name ON assets (lower(name), integration_id)
    WHERE kind IN ('table', 'view', 'materialized_view', 'external_table', 'foreign_table') AND deleted_at IS NULL;
