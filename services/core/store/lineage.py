"""Finding the assets lineage ends name: other integrations' tables by their names (through the parent chain:
schema, then database) and those tables' columns. One query for all the references of a run, not one per edge.

Only integrations the asserting integration's team can see are searched (a team's lineage never reveals another
team's tables); an integration without a team (an org owner's) searches all.
"""

from __future__ import annotations

import uuid

import asyncpg

# lower(t.name) and the kinds are the partial index assets_tables_by_lower_name.
_MATCH_TABLES = """
SELECT r.i, t.integration_id, t.asset_key
FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS r(i, db, sch, tbl)
JOIN assets t ON lower(t.name) = r.tbl AND t.deleted_at IS NULL AND t.integration_id <> $5
             AND t.kind IN ('table', 'view', 'materialized_view', 'external_table', 'foreign_table')
JOIN integrations i ON i.id = t.integration_id AND ($6::uuid IS NULL OR i.owning_team_id = $6)
LEFT JOIN assets s ON s.integration_id = t.integration_id AND s.asset_key = t.parent_key AND s.deleted_at IS NULL
LEFT JOIN assets d ON d.integration_id = t.integration_id AND d.asset_key = s.parent_key AND d.deleted_at IS NULL
WHERE (r.sch IS NULL OR lower(s.name) = r.sch) AND (r.db IS NULL OR lower(d.name) = r.db)
ORDER BY r.i, t.integration_id, t.asset_key
"""

_MATCH_COLUMNS = """
SELECT r.i, c.integration_id, c.asset_key
FROM unnest($1::int[], $2::uuid[], $3::text[], $4::text[]) AS r(i, integration_id, table_key, col)
JOIN assets c ON c.integration_id = r.integration_id AND c.parent_key = r.table_key AND c.kind = 'column'
             AND lower(c.name) = r.col AND c.deleted_at IS NULL
ORDER BY r.i, c.asset_key
"""

Match = tuple[int, uuid.UUID, str]  # (index of the reference, integration id, asset key)


async def match_tables(
    conn: asyncpg.Connection, asserting: uuid.UUID, team: uuid.UUID | None,
    names: list[tuple[str | None, str | None, str]],
) -> list[Match]:  # fmt: skip
    """Tables named (database, schema, table), lower-case, None matching any; never `asserting`'s own."""
    rows = await conn.fetch(_MATCH_TABLES, list(range(len(names))), [n[0] for n in names], [n[1] for n in names],
                            [n[2] for n in names], asserting, team)  # fmt: skip
    return [(r["i"], r["integration_id"], r["asset_key"]) for r in rows]


async def match_columns(conn: asyncpg.Connection, probes: list[tuple[uuid.UUID, str, str]]) -> list[Match]:
    """Columns named (lower-case) in tables given by (integration id, table key, column name)."""
    rows = await conn.fetch(_MATCH_COLUMNS, list(range(len(probes))), [p[0] for p in probes],
                            [p[1] for p in probes], [p[2] for p in probes])  # fmt: skip
    return [(r["i"], r["integration_id"], r["asset_key"]) for r in rows]
