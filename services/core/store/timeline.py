"""Reads of the run log for people: a run's timeline (bulk events as counts), the asset keys it changed, and the
events after a stream position (live streams)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.core.model import Principal

# A bulk event's payload is never read here: the generated `summary` column holds its counts, and coalesce stops
# there (the payload is never fetched from TOAST).
# `position` is the event's stream position: numbered as its transaction commits (migration 0010), so a
# stream resumed after one never misses an event committed later.
_SELECT = """
SELECT s.stream_position AS position, e.run_id, e.seq, e.type, e.occurred_at, e.integration_id, i.external_id,
       i.owning_team_id, coalesce(e.summary, e.payload) AS details
FROM run_events e JOIN run_event_stream s ON s.position = e.position JOIN integrations i ON i.id = e.integration_id
"""

# Whether the principal ($n: org owner, $n+1: team ids) sees the integration: Principal.can_view, as SQL.
_VISIBLE = "({org} OR i.owning_team_id = ANY({teams}::uuid[]))"


@dataclass(frozen=True)
class LoggedEvent:
    """One accepted event of a run, for reading: its payload, or for an asset or lineage batch its counts."""

    position: int  # global order of the log; the id of the event in a live stream
    run_id: uuid.UUID
    seq: int
    type: str
    occurred_at: datetime
    integration_id: uuid.UUID
    integration_external_id: str
    owning_team_id: uuid.UUID | None
    details: dict[str, Any]


def _event(row: asyncpg.Record) -> LoggedEvent:
    return LoggedEvent(
        row["position"], row["run_id"], row["seq"], row["type"], row["occurred_at"], row["integration_id"],
        row["external_id"], row["owning_team_id"], row["details"],
    )  # fmt: skip


async def run_timeline(conn: asyncpg.Connection, run_id: uuid.UUID, after_seq: int, limit: int) -> list[LoggedEvent]:
    """A run's events in order, after `after_seq` (its primary key)."""
    rows = await conn.fetch(_SELECT + "WHERE e.run_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3",
                            run_id, after_seq, limit)  # fmt: skip
    return [_event(r) for r in rows]


async def run_events_after(
    conn: asyncpg.Connection, run_id: uuid.UUID, after_position: int, limit: int
) -> list[LoggedEvent]:
    """A run's events after a stream position. A run's stream positions grow with its seq: its writers are
    serialised by the lock on its row, and its events are numbered as they commit."""
    rows = await conn.fetch(_SELECT + "WHERE e.run_id = $1 AND s.stream_position > $2 ORDER BY e.seq LIMIT $3",
                            run_id, after_position, limit)  # fmt: skip
    return [_event(r) for r in rows]


async def visible_events_after(
    conn: asyncpg.Connection, principal: Principal, after_position: int, limit: int
) -> list[LoggedEvent]:
    """Every event the principal may see after a stream position, in position order."""
    visible = _VISIBLE.format(org="$3", teams="$4")
    rows = await conn.fetch(
        _SELECT + f"WHERE s.stream_position > $1 AND {visible} ORDER BY s.stream_position LIMIT $2",
        after_position, limit, principal.org_owner, principal.team_ids,
    )  # fmt: skip
    return [_event(r) for r in rows]


async def events_at(conn: asyncpg.Connection, positions: list[int]) -> list[LoggedEvent]:
    """The events at these stream positions (notified ones), in their order."""
    rows = await conn.fetch(
        _SELECT + "WHERE s.stream_position = ANY($1::bigint[]) ORDER BY s.stream_position", positions
    )
    return [_event(r) for r in rows]


async def last_position(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(stream_position), 0) FROM run_event_stream"))


@dataclass(frozen=True)
class AssetChange:
    key: str
    kind: str | None  # None: a deleted key whose asset the store no longer knows
    change: str  # created | updated | deleted
    position: tuple[int, int, int]  # (seq, part, ordinal) in the run's log: the keyset of the listing


# A run's changes are in its own log (its asset reports), not in the assets read model, which keeps only the
# last run that touched an asset: an older run's changes stay readable after newer runs changed the same assets.
# Keyset order: (seq, part (0 upserted, 1 deleted), ordinal in the report), from the run's primary key onward;
# only the reports at and after the position are unpacked, and the read model is joined for the page only.
# Whether a report's assets were new is in its summary (no second read of the payload); a report from before
# that was said is judged by the read model: created if the run still is the asset's creator.
_CHANGES = """
WITH page AS (
    SELECT e.seq, c.part, c.ord, c.key, c.kind, e.summary ->> 'change' AS said, e.integration_id, e.run_id
    FROM run_events e
    CROSS JOIN LATERAL (
        SELECT 0 AS part, u.ord, u.asset ->> 'key' AS key, u.asset ->> 'kind' AS kind
        FROM jsonb_array_elements(coalesce(e.payload -> 'upserted', '[]'::jsonb)) WITH ORDINALITY AS u(asset, ord)
        UNION ALL
        SELECT 1, d.ord, d.key, NULL
        FROM jsonb_array_elements_text(coalesce(e.payload -> 'deleted', '[]'::jsonb)) WITH ORDINALITY AS d(key, ord)
    ) c
    WHERE e.run_id = $1 AND e.type = 'run.assets_changed.v1' AND e.seq >= $2
      AND (e.seq, c.part, c.ord) > ($2, $3, $4)
    ORDER BY e.seq, c.part, c.ord
    LIMIT $5
)
SELECT p.seq, p.part, p.ord, p.key, coalesce(p.kind, a.kind) AS kind,
       CASE WHEN p.part = 1 THEN 'deleted'
            ELSE coalesce(p.said, CASE WHEN a.created_run_id = p.run_id THEN 'created' ELSE 'updated' END)
       END AS change
FROM page p LEFT JOIN assets a ON a.integration_id = p.integration_id AND a.asset_key = p.key
ORDER BY p.seq, p.part, p.ord
"""


async def run_changes(
    conn: asyncpg.Connection, run_id: uuid.UUID, after: tuple[int, int, int], limit: int
) -> list[AssetChange]:
    """One page of the asset keys a run reported changed, after a keyset position."""
    rows = await conn.fetch(_CHANGES, run_id, *after, limit)
    return [AssetChange(r["key"], r["kind"], r["change"], (r["seq"], r["part"], r["ord"])) for r in rows]
