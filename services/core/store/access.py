"""SQL for teams and API keys. Keys are stored as sha256 hashes; the plain key is shown once at creation."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence

import asyncpg

from services.core.model import Principal


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def principal_for_key(conn: asyncpg.Connection, key: str) -> Principal | None:
    digest = hash_key(key)
    # One round trip on every request: the key with its teams.
    row = await conn.fetchrow(
        "SELECT k.id, k.name, k.org_owner, k.key_hash, k.number, "
        "       coalesce(array_agg(t.team_id) FILTER (WHERE t.team_id IS NOT NULL), '{}') AS team_ids, "
        "       coalesce(array_agg(array_to_string(t.permissions, ',')) FILTER (WHERE t.team_id IS NOT NULL), "
        "                '{}') AS team_permissions "
        "FROM api_keys k LEFT JOIN api_key_teams t ON t.api_key_id = k.id "
        "WHERE k.key_hash = $1 AND k.revoked_at IS NULL GROUP BY k.id",
        digest,
    )
    # The lookup is by hash (the secret never reaches the index); compare once more in constant time.
    if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
        return None
    return Principal(
        key_id=row["id"],
        name=row["name"],
        org_owner=row["org_owner"],
        team_permissions={
            team: frozenset(filter(None, permissions.split(",")))
            for team, permissions in zip(row["team_ids"], row["team_permissions"], strict=True)
        },
        number=row["number"],
    )


async def upsert_bootstrap_key(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, org_owner) VALUES ($1, 'bootstrap', $2, true) "
        "ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL, org_owner = true",
        uuid.uuid4(),
        hash_key(key),
    )


async def insert_key(
    conn: asyncpg.Connection,
    key_id: uuid.UUID,
    name: str,
    key: str,
    org_owner: bool,
    teams: Sequence[tuple[uuid.UUID, list[str]]],
) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, org_owner) VALUES ($1, $2, $3, $4)",
        key_id, name, hash_key(key), org_owner,
    )  # fmt: skip
    await conn.executemany(
        "INSERT INTO api_key_teams (api_key_id, team_id, permissions) VALUES ($1, $2, $3)",
        [(key_id, team_id, permissions) for team_id, permissions in teams],
    )


async def list_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT k.id, k.name, k.org_owner, k.created_at, k.revoked_at,
               coalesce(jsonb_agg(jsonb_build_object('teamExternalId', t.external_id,
                                                     'permissions', kt.permissions))
                        FILTER (WHERE t.id IS NOT NULL), '[]'::jsonb) AS teams
        FROM api_keys k
        LEFT JOIN api_key_teams kt ON kt.api_key_id = k.id
        LEFT JOIN teams t ON t.id = kt.team_id
        GROUP BY k.id ORDER BY k.created_at, k.id
        """
    )
    return rows


async def revoke_key(conn: asyncpg.Connection, key_id: uuid.UUID) -> bool:
    status = await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id)
    return bool(status.endswith(" 1"))


async def team_ids_by_external_id(conn: asyncpg.Connection, external_ids: Sequence[str]) -> dict[str, uuid.UUID]:
    rows = await conn.fetch("SELECT external_id, id FROM teams WHERE external_id = ANY($1::text[])", list(external_ids))
    return {r["external_id"]: r["id"] for r in rows}


async def insert_team(conn: asyncpg.Connection, team_id: uuid.UUID, external_id: str, name: str) -> bool:
    status = await conn.execute(
        "INSERT INTO teams (id, external_id, name) VALUES ($1, $2, $3) ON CONFLICT (external_id) DO NOTHING",
        team_id, external_id, name,
    )  # fmt: skip
    return bool(status.endswith(" 1"))


async def list_teams(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, external_id, name, created_at FROM teams ORDER BY external_id"
    )
    return rows


async def key_names(conn: asyncpg.Connection, numbers: Sequence[int]) -> dict[int, str]:
    """The names of API keys by number (principal ids shown by the Immuta dialects)."""
    rows = await conn.fetch("SELECT number, name FROM api_keys WHERE number = ANY($1::bigint[])", list(numbers))
    return {r["number"]: r["name"] for r in rows}


async def team_external_id(conn: asyncpg.Connection, team_id: uuid.UUID) -> str | None:
    value: str | None = await conn.fetchval("SELECT external_id FROM teams WHERE id = $1", team_id)
    return value
