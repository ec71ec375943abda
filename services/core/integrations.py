"""Application functions for integrations: create, update, delete, read (with access checks)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from services.core.connection_tests import ConnectionTest, ConnectionTests
from services.core.crypto import CredentialCipher
from services.core.errors import Conflict, CredentialsRequired, Forbidden, InvalidInput, NotFound
from services.core.ingestion import (
    Runtime,
    SyncRequest,
    editable_integration,
    request_cancel,
    requester,
    start_sync,
    visible_integration,
)
from services.core.model import ExternalId, Integration, Principal, Schedule, Source
from services.core.runs import RunState
from services.core.sources import Resolver, SystemResolver, check_endpoints, spec_for
from services.core.store import access as access_store
from services.core.store import integrations as integration_store
from services.core.store import run_reads
from services.core.store.integrations import IntegrationFilter as IntegrationFilter  # re-exported for the API

IntegrationWithRun = tuple[Integration, RunState | None]


class IntegrationFields(BaseModel):
    """Updatable fields; every one optional (PATCH semantics). `credentials` is write-only."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None
    schedule: Schedule | None = None
    owning_team_external_id: str | None = Field(default=None, alias="owningTeamExternalId")
    configuration: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    fail_safe_threshold: float | None = Field(
        default=None, ge=0, le=100, alias="failSafeThreshold",
        description="A run that would mark more than this percentage of the live assets deleted withholds the "
        "deletions instead (a changed schema filter or a revoked grant is not a deletion). 100 disables it.",
    )  # fmt: skip


class NewIntegration(IntegrationFields):
    external_id: ExternalId = Field(alias="externalId")
    name: str = Field(min_length=1, max_length=200)
    source: Source
    enabled: bool = True
    configuration: dict[str, Any]


class ConnectionToTest(BaseModel):
    """A configuration to try before saving it: what an integration would connect with."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Source
    configuration: dict[str, Any]
    credentials: dict[str, Any]


class IntegrationService:
    def __init__(
        self, rt: Runtime, cipher: CredentialCipher, allow_private_sources: bool, resolver: Resolver | None = None,
        tests: ConnectionTests | None = None,
    ) -> None:  # fmt: skip
        self._rt = rt
        self._cipher = cipher
        self._allow_private = allow_private_sources
        self._resolver = resolver or SystemResolver()
        self._tests = tests

    async def test_unsaved(self, principal: Principal, spec: ConnectionToTest) -> ConnectionTest:
        """Try a configuration through a connector, before anything is saved."""
        if not principal.org_owner and not principal.edits_any_team:
            raise Forbidden("Testing a connection requires INGESTION_EDIT on a team, or an organization-owner key.")
        config, credentials = await self._validated(spec.source, spec.configuration, spec.credentials, None)
        token = self._cipher.encrypt(credentials) if credentials else None
        return await self._connection_tests().run(None, principal.name, spec.source.value, config, token)

    async def test_saved(self, principal: Principal, external_id: str) -> ConnectionTest:
        """Try a saved integration's configuration and credentials through a connector."""
        async with self._rt.pool.acquire() as conn:
            integration = await editable_integration(conn, principal, external_id)
            token = await integration_store.credentials_token(conn, integration.id)
        return await self._connection_tests().run(
            integration.id, principal.name, integration.source.value, integration.configuration, token
        )

    def _connection_tests(self) -> ConnectionTests:
        if self._tests is None:
            raise RuntimeError("this IntegrationService was built without connection tests")
        return self._tests

    async def create(
        self, principal: Principal, spec: NewIntegration, *, integration_id: uuid.UUID | None = None
    ) -> Integration:
        """A new integration (`integration_id`: its id, when a dialect names integrations by id)."""
        config, credentials = await self._validated(spec.source, spec.configuration, spec.credentials, stored=None)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            return await self.insert(conn, principal, spec, config, credentials, integration_id=integration_id)

    async def default_team(self, principal: Principal) -> str | None:
        """The owning team of an integration created without one: none for an organization owner's key, else the
        one team the key edits (a key editing several must name one)."""
        if principal.org_owner:
            return None
        editable = [team for team in principal.team_ids if principal.can_edit(team)]
        if len(editable) != 1:
            raise Forbidden(
                "Creating an integration without naming its team needs an organization-owner key, or a key with "
                f"INGESTION_EDIT on exactly one team (the owner); this key edits {len(editable)} teams."
            )
        async with self._rt.pool.acquire() as conn:
            return await access_store.team_external_id(conn, editable[0])

    async def get_by_id(self, principal: Principal, integration_id: uuid.UUID) -> Integration:
        async with self._rt.pool.acquire() as conn:
            integration = await integration_store.get_by_id(conn, integration_id)
        if integration is None or not principal.can_view(integration.owning_team_id):
            raise NotFound(f"Integration '{integration_id}' was not found, or this API key cannot see it.")
        return integration

    async def page_by_creation(
        self, principal: Principal, source: str | None, page: int, page_size: int
    ) -> tuple[int, list[Integration]]:
        """(total, page `page` (0-based) in creation order) of the visible integrations, of `source` if given."""
        async with self._rt.pool.acquire() as conn:
            return await integration_store.page_by_creation(conn, principal, source, page * page_size, page_size)

    async def register(self, principal: Principal, spec: NewIntegration) -> tuple[Integration, RunState]:
        """Create an integration and start its first sync (a SYSTEM task), in one transaction."""
        config, credentials = await self._validated(spec.source, spec.configuration, spec.credentials, stored=None)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            created = await self.insert(conn, principal, spec, config, credentials)
            return created, await start_sync(self._rt, conn, created, SyncRequest("system"))

    async def insert(
        self, conn: asyncpg.Connection, principal: Principal, spec: NewIntegration, config: dict[str, Any],
        credentials: dict[str, Any] | None, *, integration_id: uuid.UUID | None = None,
    ) -> Integration:  # fmt: skip
        team_id = await self._team_for(conn, principal, spec.owning_team_external_id)
        values: dict[str, Any] = {
            "id": integration_id or self._rt.new_id(),
            "external_id": spec.external_id,
            "name": spec.name,
            "source": spec.source.value,
            "enabled": spec.enabled,
            "owning_team_id": team_id,
            "configuration": config,
            "credentials_enc": self._cipher.encrypt(credentials) if credentials else None,
            "schedule": _schedule_json(spec.schedule),
            "next_fire_at": None,
            "created_by": principal.principal_id,
            "updated_by": principal.principal_id,
        }
        if spec.fail_safe_threshold is not None:
            values["fail_safe_threshold"] = spec.fail_safe_threshold
        try:
            async with conn.transaction():
                await integration_store.insert(conn, values)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"An integration with externalId '{spec.external_id}' already exists.") from None
        created = await integration_store.get_by_external_id(conn, spec.external_id)
        assert created is not None
        return created

    async def update(
        self, principal: Principal, external_id: str, changes: IntegrationFields, *, dry_run: bool = False,
        precondition: Callable[[Integration], None] | None = None,
    ) -> Integration:  # fmt: skip
        """Apply `changes`; with `dry_run`, validate and return the result without keeping it.

        `precondition` checks the current integration's state after the request was validated (a dialect's
        409 comes after its 400)."""
        async with self._rt.pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                updated = await self.update_in(conn, principal, external_id, changes, precondition=precondition)
            except BaseException:
                await transaction.rollback()
                raise
            await (transaction.rollback() if dry_run else transaction.commit())
        return updated

    async def update_in(
        self, conn: asyncpg.Connection, principal: Principal, external_id: str, changes: IntegrationFields, *,
        replace_configuration: bool = False, precondition: Callable[[Integration], None] | None = None,
    ) -> Integration:  # fmt: skip
        """`changes` applied inside the caller's transaction. `replace_configuration`: the configuration sent
        is the whole configuration (a full replace), not merged into the stored one."""
        current = await editable_integration(conn, principal, external_id, lock=True)
        values: dict[str, Any] = {}
        sent = changes.model_fields_set
        if "name" in sent and changes.name is not None:
            values["name"] = changes.name
        if "enabled" in sent and changes.enabled is not None:
            values["enabled"] = changes.enabled
            values["next_fire_at"] = None  # re-enabling starts from now, no burst of missed fires
        if "fail_safe_threshold" in sent and changes.fail_safe_threshold is not None:
            values["fail_safe_threshold"] = changes.fail_safe_threshold
        if "schedule" in sent:
            values["schedule"] = _schedule_json(changes.schedule)
            values["schedule_error"] = values["schedule_error_at"] = None  # evaluated afresh
            values["next_fire_at"] = None  # the scheduler recomputes it from the new rule
        if "owning_team_external_id" in sent:
            values["owning_team_id"] = await self._team_for(conn, principal, changes.owning_team_external_id)
        if "configuration" in sent or "credentials" in sent:
            base = {} if replace_configuration else current.configuration
            merged = {**base, **(changes.configuration or {})}
            config, credentials = await self._validated(current.source, merged, changes.credentials, stored=current)
            values["configuration"] = config
            if credentials is not None:
                values["credentials_enc"] = self._cipher.encrypt(credentials)
        if precondition is not None:
            precondition(current)
        if values:
            values["updated_by"] = principal.principal_id
            await integration_store.update(conn, current.id, values)
        updated = await integration_store.get_by_external_id(conn, external_id)
        assert updated is not None
        return updated

    async def delete(
        self, principal: Principal, external_id: str, *, cancel_active: bool = False,
        precondition: Callable[[Integration], None] | None = None,
    ) -> None:  # fmt: skip
        """Delete an integration, its runs and assets. A run in progress is a conflict, or with `cancel_active`
        is told to stop (its connector's later reports are then ignored: the run is gone)."""
        async with self._rt.pool.acquire() as conn, conn.transaction():
            integration = await editable_integration(conn, principal, external_id, lock=True)
            if precondition is not None:
                precondition(integration)
            active = await run_reads.active_run(conn, integration.id)
            if active and not cancel_active:
                raise Conflict(f"Integration '{external_id}' has a run in progress; cancel it first.")
            if active:
                await request_cancel(self._rt, conn, integration, active.run_id, requester(principal))
            await integration_store.delete(conn, integration.id)

    async def get(self, principal: Principal, external_id: str) -> Integration:
        async with self._rt.pool.acquire() as conn:
            return await visible_integration(conn, principal, external_id)

    async def list(
        self, principal: Principal, where: IntegrationFilter, *, page: int, page_size: int
    ) -> tuple[list[IntegrationWithRun], bool]:
        """One page, and whether another page follows."""
        async with self._rt.pool.acquire() as conn:
            rows = await integration_store.list_visible(
                conn, principal, where, offset=page * page_size, limit=page_size + 1
            )
        return rows[:page_size], len(rows) > page_size

    async def list_after(
        self, principal: Principal, after: str | None, limit: int, *, sources: Sequence[str] | None = None
    ) -> tuple[Sequence[Integration], bool]:
        """One keyset page ordered by externalId (those after `after`, of `sources`), and whether more follow."""
        async with self._rt.pool.acquire() as conn:
            rows = await integration_store.list_visible(conn, principal, IntegrationFilter(sources=sources),
                                                        after=after, limit=limit + 1)  # fmt: skip
        return [integration for integration, _ in rows[:limit]], len(rows) > limit

    async def list_all(
        self, principal: Principal, where: IntegrationFilter, *, batch_size: int = 500
    ) -> AsyncIterator[Sequence[IntegrationWithRun]]:
        """Every visible integration, in batches of keyset-paged queries.

        A connection is held per batch only, never while the caller writes a batch out to a slow client.
        """
        after: str | None = None
        while True:
            async with self._rt.pool.acquire() as conn:
                batch = await integration_store.list_visible(conn, principal, where, after=after, limit=batch_size)
            yield batch
            if len(batch) < batch_size:
                return
            after = batch[-1][0].external_id

    async def _team_for(self, conn: asyncpg.Connection, principal: Principal, team_external_id: str | None) -> Any:
        if team_external_id is None:
            if not principal.org_owner:
                raise Forbidden("Only organization owners can manage integrations without an owning team.")
            return None
        teams = await access_store.team_ids_by_external_id(conn, [team_external_id])
        if team_external_id not in teams:
            raise InvalidInput(f"Team '{team_external_id}' does not exist.", field="owningTeamExternalId")
        team_id = teams[team_external_id]
        if not principal.can_edit(team_id):
            raise Forbidden(f"This API key lacks INGESTION_EDIT on team '{team_external_id}'.")
        return team_id

    async def _validated(
        self, source: Source, configuration: dict[str, Any], credentials: dict[str, Any] | None,
        stored: Integration | None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:  # fmt: skip
        """Configuration and credentials (None: keep the stored ones) as they will be saved, or InvalidInput."""
        spec = spec_for(source)
        config = spec.parse_config(configuration)
        creds = spec.parse_credentials(credentials) if credentials is not None else None
        if creds is None and spec.secret_fields:
            if stored is not None and stored.has_credentials:
                # The stored credentials may only go where, and as whom, they were entered for.
                changed = spec.changed_identity(stored.configuration, config)
                if changed:
                    raise CredentialsRequired(
                        f"Changing {', '.join(changed)} changes where or as whom the stored credentials are sent; "
                        f"send `credentials` ({', '.join(sorted(spec.secret_fields))}) in the same request.",
                        field="credentials",
                    )
            elif spec.credentials_optional:
                creds = spec.parse_credentials({})  # the platform needs none here, and none are stored
            else:
                raise InvalidInput(f"credentials are required for source '{source.value}'", field="credentials")
        if creds is not None:
            spec.check_together(config, creds)
        if not self._allow_private:
            await check_endpoints(spec.endpoints(config), allow_private=False, resolver=self._resolver)
        return config.model_dump(by_alias=True), creds.model_dump(by_alias=True) if creds else None


def _schedule_json(schedule: Schedule | None) -> dict[str, Any] | None:
    return schedule.model_dump(by_alias=True, exclude_none=True) if schedule else None
