"""SQL for data objects (the non-column assets, plus the connection as root '') and their settings overrides.

Object keys are asset keys. Every listing is one indexed query; subtrees of object_settings are key ranges
(COLLATE "C": k || '/' <= key < k || '0'), descendants of assets are `starts_with(asset_key, k || '/')`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.core.objects import SETTING_ATTRIBUTES, SETTING_NAMES, Overrides, SettingName, lineage

_COLUMNS = "asset_key, kind, name, parent_key, object_id, created_at, updated_at"
_LIVE_OBJECTS = "integration_id = $1 AND kind <> 'column' AND deleted_at IS NULL"
# The remote id (names joined by '.') of an asset key: split on '/', then unescape each name.
_REMOTE_ID = "replace(replace(replace(asset_key, '/', '.'), '%2F', '/'), '%25', '%')"


@dataclass(frozen=True)
class ObjectRow:
    key: str
    kind: str
    name: str
    object_id: uuid.UUID
    created_at: datetime | None
    updated_at: datetime | None


def _row(r: asyncpg.Record) -> ObjectRow:
    return ObjectRow(r["asset_key"], r["kind"], r["name"], r["object_id"], r["created_at"], r["updated_at"])


async def get_by_key(conn: asyncpg.Connection, integration_id: uuid.UUID, key: str) -> ObjectRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM assets WHERE {_LIVE_OBJECTS} AND asset_key = $2",
                              integration_id, key)  # fmt: skip
    return _row(row) if row else None


async def get_by_id(conn: asyncpg.Connection, integration_id: uuid.UUID, oid: uuid.UUID) -> ObjectRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM assets WHERE {_LIVE_OBJECTS} AND object_id = $2",
                              integration_id, oid)  # fmt: skip
    return _row(row) if row else None


async def children_after(
    conn: asyncpg.Connection, integration_id: uuid.UUID, parent: str, after: tuple[str, uuid.UUID] | None, limit: int
) -> list[ObjectRow]:
    """Direct children ordered by (name, id), after a keyset position: one range of assets_objects_by_parent.
    The database is the root's child (its parent_key is '')."""
    where = f"{_LIVE_OBJECTS} AND parent_key = $2"
    if after is None:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM assets WHERE {where} ORDER BY name, object_id LIMIT $3",
                                integration_id, parent, limit)  # fmt: skip
    else:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM assets WHERE {where} AND (name, object_id) > ($3::text, $4::uuid)
                ORDER BY name, object_id LIMIT $5""",
            integration_id, parent, after[0], after[1], limit,
        )  # fmt: skip
    return [_row(r) for r in rows]


@dataclass(frozen=True)
class ObjectFilter:
    name: str | None = None
    kinds: Sequence[str] | None = None  # asset kinds ('connection' for the root)
    remote_id: str | None = None


async def search_after(
    conn: asyncpg.Connection, integration_id: uuid.UUID, root: ObjectRow, root_remote_id: str, where: ObjectFilter,
    after: tuple[str, uuid.UUID] | None, limit: int,
) -> list[ObjectRow]:  # fmt: skip
    """Every object of a connection (the root included) matching `where`, ordered by (name, id)."""
    rows = await conn.fetch(
        f"""WITH objects AS (
              SELECT '' AS asset_key, 'connection' AS kind, $6::text AS name, NULL::text AS parent_key,
                     $7::uuid AS object_id, $8::timestamptz AS created_at, $9::timestamptz AS updated_at,
                     $10::text AS remote_id
              UNION ALL
              SELECT {_COLUMNS}, {_REMOTE_ID} FROM assets WHERE {_LIVE_OBJECTS})
            SELECT * FROM objects
            WHERE ($2::text IS NULL OR name = $2) AND ($3::text[] IS NULL OR kind = ANY($3::text[]))
              AND ($4::text IS NULL OR remote_id = $4)
              AND ($5::text IS NULL OR (name, object_id) > ($5::text, $11::uuid))
            ORDER BY name, object_id LIMIT $12""",
        integration_id, where.name, list(where.kinds) if where.kinds is not None else None, where.remote_id,
        after[0] if after else None, root.name, root.object_id, root.created_at, root.updated_at, root_remote_id,
        after[1] if after else None, limit,
    )  # fmt: skip
    return [_row(r) for r in rows]


def like_pattern(text: str | None) -> str | None:
    """An ILIKE pattern matching `text` anywhere, its wildcards taken literally."""
    if text is None:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_SORTS = {("name", "asc"): "name ASC, object_id ASC", ("name", "desc"): "name DESC, object_id DESC",
          ("createdAt", "asc"): "created_at ASC, name ASC, object_id ASC",
          ("createdAt", "desc"): "created_at DESC, name DESC, object_id DESC"}  # fmt: skip


async def search_children(
    conn: asyncpg.Connection, integration_id: uuid.UUID, parent: str, text: str | None, sort: str, order: str,
    offset: int, limit: int,
) -> tuple[int, list[ObjectRow]]:  # fmt: skip
    """(total matches, one page) of the direct children of `parent`, `text` matching names case-insensitively."""
    pattern = like_pattern(text)
    where = f"{_LIVE_OBJECTS} AND parent_key = $2 AND ($3::text IS NULL OR name ILIKE $3)"
    count = await conn.fetchval(f"SELECT count(*) FROM assets WHERE {where}", integration_id, parent, pattern)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM assets WHERE {where} ORDER BY {_SORTS[(sort, order)]} OFFSET $4 LIMIT $5",
        integration_id, parent, pattern, offset, limit,
    )  # fmt: skip
    return count, [_row(r) for r in rows]


async def count_descendants(conn: asyncpg.Connection, integration_id: uuid.UUID, key: str) -> int:
    """Data objects below `key` at every level (not `key` itself)."""
    count: int = await conn.fetchval(
        f"SELECT count(*) FROM assets WHERE {_LIVE_OBJECTS} AND ($2 = '' OR starts_with(asset_key, $2 || '/'))",
        integration_id, key,
    )  # fmt: skip
    return count


async def subtree(conn: asyncpg.Connection, integration_id: uuid.UUID, key: str) -> tuple[list[str], int]:
    """The keys of every live asset of the subtree at `key` (columns too, `key` itself included), and how many
    data objects are below `key`: what a delete of `key` removes, and its childCount. One pass."""
    rows = await conn.fetch(
        "SELECT asset_key, kind FROM assets WHERE integration_id = $1 AND deleted_at IS NULL "
        "AND (asset_key = $2 OR starts_with(asset_key, $2 || '/'))",
        integration_id, key,
    )  # fmt: skip
    below = sum(1 for r in rows if r["kind"] != "column" and r["asset_key"] != key)
    return [r["asset_key"] for r in rows], below


# ---- settings -------------------------------------------------------------------------------


async def overrides_along(
    conn: asyncpg.Connection, integration_id: uuid.UUID, keys: Sequence[str]
) -> dict[str, Overrides]:
    """The overrides set on `keys` and on every ancestor of them."""
    wanted = sorted({k for key in keys for k in lineage(key)})
    rows = await conn.fetch(
        "SELECT * FROM object_settings WHERE integration_id = $1 AND object_key = ANY($2::text[])",
        integration_id, wanted,
    )  # fmt: skip
    return {r["object_key"]: Overrides.from_row(r) for r in rows}


async def overridden_below(
    conn: asyncpg.Connection, integration_id: uuid.UUID, keys: Sequence[str]
) -> dict[str, set[SettingName]]:
    """For each key, the settings some descendant of it overrides (hasDescendantsWithOverrides)."""
    flags = ", ".join(f"bool_or(s.{SETTING_ATTRIBUTES[name]} IS NOT NULL)" for name in SETTING_NAMES)
    found: dict[str, set[SettingName]] = {}
    inner = [key for key in set(keys) if key != ""]
    if inner:  # one primary-key range per key: k || '/' <= object_key < k || '0'
        rows = await conn.fetch(
            f"""SELECT k.key, f.* FROM unnest($2::text[]) AS k(key)
                CROSS JOIN LATERAL (
                  SELECT {flags} FROM object_settings s
                  WHERE s.integration_id = $1 AND s.object_key >= (k.key || '/') COLLATE "C"
                    AND s.object_key < (k.key || '0') COLLATE "C") f""",
            integration_id, inner,
        )  # fmt: skip
        found.update({r["key"]: _flagged(list(r)[1:]) for r in rows})
    if "" in keys:  # the connection: anything set below it
        row = await conn.fetchrow(
            f"SELECT {flags} FROM object_settings s WHERE s.integration_id = $1 AND s.object_key <> ''", integration_id
        )
        found[""] = _flagged(list(row) if row else [])
    return found


def _flagged(flags: Sequence[bool | None]) -> set[SettingName]:
    return {name for name, flag in zip(SETTING_NAMES, flags, strict=False) if flag}


async def is_active_overrides(conn: asyncpg.Connection, integration_id: uuid.UUID) -> dict[str, bool]:
    rows = await conn.fetch(
        "SELECT object_key, is_active FROM object_settings WHERE integration_id = $1 AND is_active IS NOT NULL",
        integration_id,
    )
    return {r["object_key"]: r["is_active"] for r in rows}


def _grantees(value: Sequence[Any] | None) -> str | None:
    return None if value is None else json.dumps([g.model_dump() for g in value])


async def save_overrides(
    conn: asyncpg.Connection, integration_id: uuid.UUID, key: str, overrides: Overrides, at: datetime, by: str | None
) -> None:
    if not overrides.names:
        await conn.execute("DELETE FROM object_settings WHERE integration_id = $1 AND object_key = $2",
                           integration_id, key)  # fmt: skip
        return
    await conn.execute(
        """INSERT INTO object_settings (integration_id, object_key, is_active, activate_new_children, data_owners,
                                        infrastructure_admins, updated_at, updated_by)
           VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8)
           ON CONFLICT (integration_id, object_key) DO UPDATE SET
             is_active = EXCLUDED.is_active, activate_new_children = EXCLUDED.activate_new_children,
             data_owners = EXCLUDED.data_owners, infrastructure_admins = EXCLUDED.infrastructure_admins,
             updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by""",
        integration_id, key, overrides.is_active, overrides.activate_new_children, _grantees(overrides.data_owners),
        _grantees(overrides.infrastructure_admins), at, by,
    )  # fmt: skip


async def delete_subtree_settings(conn: asyncpg.Connection, integration_id: uuid.UUID, key: str) -> None:
    """Forget the overrides of a deleted subtree: objects found again later start afresh."""
    await conn.execute(
        """DELETE FROM object_settings WHERE integration_id = $1
           AND (object_key = $2 OR (object_key >= ($2 || '/') COLLATE "C" AND object_key < ($2 || '0') COLLATE "C"))""",
        integration_id, key,
    )  # fmt: skip


@dataclass(frozen=True)
class SyncTimes:
    synced_at: datetime  # the last successful sync of the scope
    forced_at: datetime | None  # the last one with forceRecursive (it also listed inactive subtrees)


async def sync_times(conn: asyncpg.Connection, integration_id: uuid.UUID) -> dict[str, SyncTimes]:
    """When a successful sync last listed each scope ('' = the whole connection)."""
    rows = await conn.fetch("SELECT scope, synced_at, forced_at FROM sync_scopes WHERE integration_id = $1",
                            integration_id)  # fmt: skip
    return {r["scope"]: SyncTimes(r["synced_at"], r["forced_at"]) for r in rows}


async def roots_settings(
    conn: asyncpg.Connection, integration_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, Overrides], dict[uuid.UUID, set[SettingName]], dict[uuid.UUID, SyncTimes]]:
    """For many connections at once: the settings of each root, what is overridden below it, its last full sync."""
    ids = list(integration_ids)
    own = await conn.fetch("SELECT * FROM object_settings WHERE integration_id = ANY($1::uuid[]) AND object_key = ''",
                           ids)  # fmt: skip
    flags = ", ".join(f"bool_or({SETTING_ATTRIBUTES[name]} IS NOT NULL)" for name in SETTING_NAMES)
    below = await conn.fetch(
        f"SELECT integration_id, {flags} FROM object_settings WHERE integration_id = ANY($1::uuid[]) "
        "AND object_key <> '' GROUP BY integration_id",
        ids,
    )
    synced = await conn.fetch(
        "SELECT integration_id, synced_at, forced_at FROM sync_scopes WHERE integration_id = ANY($1::uuid[]) "
        "AND scope = ''",
        ids,
    )
    return (
        {r["integration_id"]: Overrides.from_row(r) for r in own},
        {r["integration_id"]: _flagged(list(r)[1:]) for r in below},
        {r["integration_id"]: SyncTimes(r["synced_at"], r["forced_at"]) for r in synced},
    )
