"""Application functions over a run's log for people: its timeline, the assets it changed, what live streams
replay and which events a key may see."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from services.core.errors import Gone
from services.core.ingestion import Runtime, visible_run
from services.core.model import Principal
from services.core.runs import RunStatus
from services.core.store import compaction
from services.core.store import timeline as store
from services.core.store.timeline import AssetChange, LoggedEvent

REPLAY_BATCH = 500
Replay = Callable[[asyncpg.Connection, int], Awaitable[list[LoggedEvent]]]  # (conn, after position) -> a batch


async def run_timeline(
    rt: Runtime, principal: Principal, external_id: str, run_id: uuid.UUID, after_seq: int, limit: int
) -> tuple[list[LoggedEvent], bool]:
    """One page of a run's accepted events in order, and whether more follow."""
    async with rt.pool.acquire() as conn:
        await visible_run(conn, principal, external_id, run_id)
        events = await store.run_timeline(conn, run_id, after_seq, limit + 1)
    return events[:limit], len(events) > limit


async def run_changes(
    rt: Runtime, principal: Principal, external_id: str, run_id: uuid.UUID, after: tuple[int, int, int], limit: int
) -> tuple[list[AssetChange], bool]:
    """One page of the asset keys a run created, updated or deleted, and whether more follow. Only a successful
    run changes the catalog: any other run's reported changes were never applied, so it has none. Gone when the
    run log's retention compacted the run's batches: its keys are no longer stored, its counts are."""
    async with rt.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        run = await visible_run(conn, principal, external_id, run_id)
        if run.status is not RunStatus.SUCCESS:
            return [], False
        compacted_at = await compaction.compaction_of(conn, run_id)
        if compacted_at is not None:
            c = run.counts
            raise Gone(
                f"The asset keys run {run_id} changed are no longer stored: the run log's retention compacted its "
                f"batches on {compacted_at:%Y-%m-%d} (newer syncs superseded it). Its counts remain: {c.created} "
                f"created, {c.updated} updated, {c.deleted} deleted; its timeline (.../events) has each batch's."
            )
        # One snapshot with the check above: a compaction committing in between is seen by both or by neither.
        changes = await store.run_changes(conn, run_id, after, limit + 1)
    return changes[:limit], len(changes) > limit


def run_replay(run_id: uuid.UUID) -> Replay:
    """What a run's stream replays: its events after a position, a batch at a time."""
    return lambda conn, after: store.run_events_after(conn, run_id, after, REPLAY_BATCH)


def visible_replay(principal: Principal) -> Replay:
    return lambda conn, after: store.visible_events_after(conn, principal, after, REPLAY_BATCH)


def visible_to(principal: Principal) -> Callable[[LoggedEvent], bool]:
    return lambda event: principal.can_view(event.owning_team_id)
