"""Listing integrations: keyset batches cover everything visible exactly once, with the filters applied."""

from __future__ import annotations

import uuid

import pytest

from services.core.access import AccessService, NewTeam
from services.core.integrations import IntegrationFilter
from services.core.model import Principal
from services.core.store import access as access_store
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration


async def collect(integrations, principal, where, batch_size):
    sizes, names = [], []
    async for batch in integrations.list_all(principal, where, batch_size=batch_size):
        sizes.append(len(batch))
        names.extend(integration.external_id for integration, _ in batch)
    return sizes, names


async def test_batches_cover_every_visible_integration_once_in_order(runtime, integrations, make_integration):
    team = f"list-{uuid.uuid4().hex[:8]}"
    await AccessService(runtime).create_team(OWNER, NewTeam(externalId=team, name="Listing"))
    async with runtime.pool.acquire() as conn:
        team_id = (await access_store.team_ids_by_external_id(conn, [team]))[team]
    owned = [f"{team}-{i}" for i in range(7)]
    for i, external_id in enumerate(owned):
        await make_integration(externalId=external_id, owningTeamExternalId=team, enabled=i % 2 == 0)
    await make_integration(externalId=f"{team}-unowned")
    viewer = Principal(key_id=uuid.uuid4(), name="viewer", org_owner=False,
                       team_permissions={team_id: frozenset({"INGESTION_VIEW"})})  # fmt: skip

    assert await collect(integrations, viewer, IntegrationFilter(), 3) == ([3, 3, 1], owned)
    assert await collect(integrations, viewer, IntegrationFilter(), 7) == ([7, 0], owned)
    disabled = IntegrationFilter(team_external_id=team, enabled=False)
    assert await collect(integrations, OWNER, disabled, 2) == ([2, 1], owned[1::2])
    assert await collect(integrations, OWNER, IntegrationFilter(team_external_id=team, source="mysql"), 2) == ([0], [])
    _, everything = await collect(integrations, OWNER, IntegrationFilter(), 4)
    assert set(owned) | {f"{team}-unowned"} <= set(everything) and everything == sorted(everything)
