"""Application functions for access control: authenticate API keys, manage teams and keys."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.core.ingestion import Runtime
from services.core.model import ExternalId, Permission, Principal
from services.core.store import access as access_store

KEY_PREFIX = "icp_"


class NewTeam(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    external_id: ExternalId = Field(alias="externalId")
    name: str = Field(min_length=1, max_length=200)


class TeamGrant(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    team_external_id: str = Field(alias="teamExternalId")
    permissions: list[Permission] = Field(min_length=1)


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    org_owner: bool = Field(default=False, alias="organizationOwner")
    teams: list[TeamGrant] = Field(default_factory=list)

    @field_validator("teams")
    @classmethod
    def _each_team_once(cls, teams: list[TeamGrant]) -> list[TeamGrant]:
        names = [grant.team_external_id for grant in teams]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"grant each team once, with all its permissions; listed twice: {', '.join(twice)}")
        return teams


@dataclass(frozen=True)
class Team:
    external_id: str
    name: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class TeamGrantInfo:
    team_external_id: str
    permissions: list[str]


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as an owner may see it: never the key itself."""

    id: uuid.UUID
    name: str
    org_owner: bool
    teams: list[TeamGrantInfo]
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    id: uuid.UUID
    name: str
    key: str  # shown once; only its hash is stored


class AccessService:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def authenticate(self, key: str) -> Principal | None:
        async with self._rt.pool.acquire() as conn:
            return await access_store.principal_for_key(conn, key)

    async def ensure_bootstrap_key(self, key: str) -> None:
        async with self._rt.pool.acquire() as conn:
            await access_store.upsert_bootstrap_key(conn, key)

    async def create_team(self, principal: Principal, spec: NewTeam) -> Team:
        _require_owner(principal)
        async with self._rt.pool.acquire() as conn:
            if not await access_store.insert_team(conn, self._rt.new_id(), spec.external_id, spec.name):
                raise Conflict(f"A team with externalId '{spec.external_id}' already exists.")
        return Team(external_id=spec.external_id, name=spec.name)

    async def list_teams(self, principal: Principal) -> list[Team]:
        async with self._rt.pool.acquire() as conn:
            rows = await access_store.list_teams(conn)
        return [
            Team(external_id=r["external_id"], name=r["name"], created_at=r["created_at"])
            for r in rows
            if principal.org_owner or r["id"] in principal.team_permissions
        ]

    async def team_by_id_or_external_id(self, value: str) -> str | None:
        """The externalId of the team `value` names by id (as Secoda shows teams) or by externalId; None: no such."""
        async with self._rt.pool.acquire() as conn:
            try:
                return await access_store.team_external_id(conn, uuid.UUID(value))
            except ValueError:
                teams = await access_store.team_ids_by_external_id(conn, [value])
                return value if value in teams else None

    async def create_key(self, principal: Principal, spec: NewApiKey) -> IssuedKey:
        _require_owner(principal)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = self._rt.new_id()
        async with self._rt.pool.acquire() as conn, conn.transaction():
            wanted = [grant.team_external_id for grant in spec.teams]
            found = await access_store.team_ids_by_external_id(conn, wanted)
            missing = sorted(set(wanted) - set(found))
            if missing:
                raise InvalidInput(f"Unknown team(s): {', '.join(missing)}", field="teams")
            grants = [(found[g.team_external_id], [p.value for p in g.permissions]) for g in spec.teams]
            await access_store.insert_key(conn, key_id, spec.name, key, spec.org_owner, grants)
        return IssuedKey(id=key_id, name=spec.name, key=key)

    async def list_keys(self, principal: Principal) -> list[ApiKeyInfo]:
        _require_owner(principal)
        async with self._rt.pool.acquire() as conn:
            rows = await access_store.list_keys(conn)
        return [
            ApiKeyInfo(
                id=r["id"], name=r["name"], org_owner=r["org_owner"], created_at=r["created_at"],
                revoked_at=r["revoked_at"],
                teams=[TeamGrantInfo(t["teamExternalId"], list(t["permissions"])) for t in r["teams"]],
            )
            for r in rows
        ]  # fmt: skip

    async def revoke_key(self, principal: Principal, key_id: uuid.UUID) -> None:
        _require_owner(principal)
        async with self._rt.pool.acquire() as conn:
            if not await access_store.revoke_key(conn, key_id):
                raise NotFound(f"API key '{key_id}' was not found or is already revoked.")


def _require_owner(principal: Principal) -> None:
    if not principal.org_owner:
        raise Forbidden("This operation requires an organization-owner API key.")
