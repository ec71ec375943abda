"""Application function: an integration's schedule fires, including the ones skipped while a run was active."""

from __future__ import annotations

from services.core.ingestion import Runtime, visible_integration
from services.core.model import Principal
from services.core.store import schedule_fires as store
from services.core.store.schedule_fires import ScheduleFire


async def list_fires(
    rt: Runtime, principal: Principal, external_id: str, before_id: int | None, limit: int
) -> tuple[list[ScheduleFire], bool]:
    """One page of fires, newest first, and whether more follow."""
    async with rt.pool.acquire() as conn:
        integration = await visible_integration(conn, principal, external_id)
        fires = await store.list_fires(conn, integration.id, before_id, limit + 1)
    return fires[:limit], len(fires) > limit
