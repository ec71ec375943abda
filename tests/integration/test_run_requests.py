"""Triggering and reading an integration's run, answered by who asks (POST .../run and GET .../runs/latest
read the integration and its run in one statement; these hold the answers to what the full checks said)."""

from __future__ import annotations

import uuid

import pytest

from services.core import ingestion
from services.core.access import AccessService, NewTeam
from services.core.errors import AlreadyRunning, Conflict, Forbidden, NotFound
from services.core.model import Principal
from services.core.store import access as access_store
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration


async def test_a_second_trigger_is_refused_by_what_the_key_may_do(runtime, make_integration) -> None:
    team = f"req-{uuid.uuid4().hex[:8]}"
    await AccessService(runtime).create_team(OWNER, NewTeam(externalId=team, name=team))
    async with runtime.pool.acquire() as conn:
        team_id = (await access_store.team_ids_by_external_id(conn, [team]))[team]
    integration = await make_integration(owningTeamExternalId=team)
    name = integration.external_id

    def key(*permissions: str) -> Principal:
        return Principal(key_id=uuid.uuid4(), name="k", org_owner=False,
                         team_permissions={team_id: frozenset(permissions)})  # fmt: skip

    editor, viewer = key("INGESTION_VIEW", "INGESTION_EDIT"), key("INGESTION_VIEW")
    stranger = Principal(key_id=uuid.uuid4(), name="stranger", org_owner=False)
    with pytest.raises(NotFound, match="has never run"):
        await ingestion.latest_run(runtime, viewer, name)

    run = await ingestion.trigger_run(runtime, editor, name)
    with pytest.raises(AlreadyRunning, match=f"already in progress for integration '{name}'"):
        await ingestion.trigger_run(runtime, editor, name)
    with pytest.raises(AlreadyRunning):
        await ingestion.trigger_run(runtime, OWNER, name)
    with pytest.raises(Forbidden):  # a key that may only look is told so, not that a run is active
        await ingestion.trigger_run(runtime, viewer, name)
    for nobody in (stranger, OWNER):
        missing = name if nobody is stranger else "no-such-integration"
        with pytest.raises(NotFound, match="was not found, or this API key cannot see it"):
            await ingestion.trigger_run(runtime, nobody, missing)
        with pytest.raises(NotFound, match="was not found, or this API key cannot see it"):
            await ingestion.latest_run(runtime, nobody, missing)

    assert (await ingestion.latest_run(runtime, viewer, name)).run_id == run.run_id
    assert (await ingestion.latest_run(runtime, OWNER, name)).run_id == run.run_id


async def test_an_integration_synced_by_uploads_is_not_triggered_even_while_a_run_is_active(
    runtime, make_integration
) -> None:
    integration = await make_integration(source="dbt_core", configuration={}, credentials=None)
    async with runtime.pool.acquire() as conn, conn.transaction():
        await ingestion.claim_run(conn, integration, ingestion.SyncRequest("upload", ingestion.SYSTEM,
                                  upload_id=uuid.uuid4()), at=runtime.clock(), run_id=uuid.uuid4(),
                                  task_id=uuid.uuid4())  # fmt: skip
    with pytest.raises(Conflict, match="is not crawled") as refused:
        await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    assert not isinstance(refused.value, AlreadyRunning)
