"""Connections: integrations seen as Immuta sees them (state, health, registration that starts a sync).

The state rules of the connection lifecycle live here; the dialects only map wire formats onto them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from services.core.connection_tests import NoConnectorAnswered
from services.core.errors import AlreadyRunning, Conflict
from services.core.ingestion import Runtime, SyncRequest, start_sync
from services.core.integrations import IntegrationFields, IntegrationService, NewIntegration
from services.core.model import ConnectionState, Health, Integration, Principal
from services.core.runs import RunState
from services.core.store import access as access_store
from services.core.store import integrations as integration_store


class ActiveSync(Conflict):
    """A sync of the connection is already PENDING or RUNNING."""


def require_state(*allowed: ConnectionState, action: str) -> Callable[[Integration], None]:
    def check(integration: Integration) -> None:
        if integration.state not in allowed:
            wanted = " or ".join(state.value for state in allowed)
            raise Conflict(
                f"Connection '{integration.external_id}' is {integration.state.value}; {action} needs it {wanted}."
            )

    return check


class ConnectionService:
    def __init__(self, rt: Runtime, integrations: IntegrationService) -> None:
        self._rt = rt
        self._integrations = integrations

    async def register(self, principal: Principal, spec: NewIntegration) -> tuple[Integration, RunState]:
        """A new connection, owned by the caller's team when it edits exactly one, and its first sync."""
        if spec.owning_team_external_id is None:
            spec = spec.model_copy(update={"owning_team_external_id": await self._integrations.default_team(principal)})
        return await self._integrations.register(principal, spec)

    async def replace(
        self, principal: Principal, key: str, configuration: dict[str, Any], credentials: dict[str, Any] | None
    ) -> tuple[Integration, RunState]:
        """A full replace of the connection's configuration and credentials, then a SYSTEM sync with them."""
        changes = IntegrationFields(configuration=configuration, credentials=credentials)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            updated = await self._integrations.update_in(conn, principal, key, changes, replace_configuration=True)
            return updated, await self.start(conn, updated, SyncRequest("system"))

    async def set_active(self, principal: Principal, key: str, active: bool) -> Integration:
        wanted = ConnectionState.INACTIVE if active else ConnectionState.ACTIVE
        allowed = (wanted,) if active else (ConnectionState.ACTIVE, ConnectionState.UNHEALTHY)
        action = "_activate" if active else "_deactivate"
        return await self._integrations.update(
            principal, key, IntegrationFields(enabled=active), precondition=require_state(*allowed, action=action)
        )

    async def validate(self, principal: Principal, key: str) -> tuple[Integration, Health]:
        """Connect and read the catalog through a connector; the outcome is persisted as the connection's health."""
        try:
            tested = await self._integrations.test_saved(principal, key)
            health = Health(ok=tested.passed, at=tested.finished_at, message=tested.message)
        except NoConnectorAnswered as silent:
            health = Health(ok=False, at=self._rt.clock(), message=silent.detail)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            integration = await integration_store.get_by_external_id(conn, key)
            if integration is None:  # deleted meanwhile
                return await self._integrations.get(principal, key), health
            await integration_store.record_health(conn, integration.id, health)
            refreshed = await integration_store.get_by_external_id(conn, key)
        assert refreshed is not None
        return refreshed, health

    async def delete(self, principal: Principal, key: str, *, require_inactive: bool) -> uuid.UUID:
        """Deregister: the connection, its objects, settings, tasks and runs go at once (an active sync is told to
        stop). Returns the id of the CONNECTION_DELETE task, which is complete when this returns."""
        precondition = require_state(ConnectionState.INACTIVE, action="deletion") if require_inactive else None
        await self._integrations.delete(principal, key, cancel_active=True, precondition=precondition)
        return self._rt.new_id()

    async def start_sync(self, conn: asyncpg.Connection, integration: Integration, request: SyncRequest) -> RunState:
        """A sync a user asked for, of an active connection (a deactivated one runs no syncs): 409 otherwise."""
        require_state(ConnectionState.ACTIVE, ConnectionState.UNHEALTHY, action="a sync")(integration)
        return await self.start(conn, integration, request)

    async def start(self, conn: asyncpg.Connection, integration: Integration, request: SyncRequest) -> RunState:
        """Start a sync inside the caller's transaction; one already PENDING or RUNNING is a 409."""
        try:
            return await start_sync(self._rt, conn, integration, request)
        except AlreadyRunning:
            raise ActiveSync(
                f"A sync of connection '{integration.external_id}' is already pending or running; wait for it or "
                "cancel its task run."
            ) from None

    async def principal_names(self, numbers: list[int]) -> dict[int, str]:
        async with self._rt.pool.acquire() as conn:
            return await access_store.key_names(conn, numbers)
