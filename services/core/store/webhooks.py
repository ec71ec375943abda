"""SQL for webhook subscriptions and their deliveries: a durable queue the notifier fills and drains."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Webhook:
    id: uuid.UUID
    team_id: uuid.UUID | None
    team_external_id: str | None
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    created_by: str | None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    started_at: datetime
    duration_ms: int | None  # None: cut short (the notifier stopped while the request was in flight)
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID  # the idempotency key a receiver sees on every attempt
    event_id: uuid.UUID
    event_type: str
    run_id: uuid.UUID
    integration_external_id: str
    status: str  # PENDING | DELIVERED | FAILED
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[Attempt]


_SELECT = """
SELECT w.id, w.team_id, t.external_id AS team_external_id, w.url, w.events, w.description, w.enabled,
       w.created_at, w.updated_at, w.created_by
FROM webhooks w LEFT JOIN teams t ON t.id = w.team_id
"""
_UPDATABLE = frozenset({"url", "events", "description", "enabled", "secret_enc"})


def _webhook(row: asyncpg.Record) -> Webhook:
    return Webhook(
        id=row["id"], team_id=row["team_id"], team_external_id=row["team_external_id"], url=row["url"],
        events=list(row["events"]), description=row["description"], enabled=row["enabled"],
        created_at=row["created_at"], updated_at=row["updated_at"], created_by=row["created_by"],
    )  # fmt: skip


async def insert(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, team_id: uuid.UUID | None, url: str, events: list[str],
    description: str | None, enabled: bool, secret_enc: bytes, created_by: str,
) -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO webhooks (id, team_id, url, events, description, enabled, secret_enc, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        webhook_id, team_id, url, events, description, enabled, secret_enc, created_by,
    )  # fmt: skip


async def get(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> Webhook | None:
    row = await conn.fetchrow(_SELECT + "WHERE w.id = $1", webhook_id)
    return _webhook(row) if row else None


async def list_visible(conn: asyncpg.Connection, org_owner: bool, team_ids: Sequence[uuid.UUID]) -> list[Webhook]:
    # Mirrors Principal.can_view: organization owners see every subscription, team keys their teams' ones.
    rows = await conn.fetch(
        _SELECT + "WHERE $1::boolean OR w.team_id = ANY($2::uuid[]) ORDER BY w.created_at, w.id", org_owner,
        list(team_ids),
    )  # fmt: skip
    return [_webhook(row) for row in rows]


async def update(conn: asyncpg.Connection, webhook_id: uuid.UUID, values: dict[str, Any]) -> None:
    if not values:
        return
    assert set(values) <= _UPDATABLE, set(values) - _UPDATABLE  # column names come from this module only
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=2))
    await conn.execute(
        f"UPDATE webhooks SET {assignments}, updated_at = now() WHERE id = $1", webhook_id, *values.values()
    )


async def delete(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook_id)


async def list_deliveries(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Delivery]:
    rows = await conn.fetch(
        """
        SELECT d.*, coalesce((
            SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'started_at', a.started_at,
                                                'duration_ms', a.duration_ms, 'status_code', a.status_code,
                                                'error', a.error) ORDER BY a.attempt)
            FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb)::text AS attempt_list
        FROM webhook_deliveries d
        WHERE d.webhook_id = $1 AND ($2::timestamptz IS NULL OR (d.created_at, d.id) < ($2, $3::uuid))
        ORDER BY d.created_at DESC, d.id DESC
        LIMIT $4
        """,
        webhook_id, after[0] if after else None, after[1] if after else None, limit,
    )  # fmt: skip
    return [_delivery(row) for row in rows]


def _delivery(row: asyncpg.Record) -> Delivery:
    attempts = [
        Attempt(attempt=a["attempt"], started_at=datetime.fromisoformat(a["started_at"]),
                duration_ms=a["duration_ms"], status_code=a["status_code"], error=a["error"])
        for a in json.loads(row["attempt_list"])
    ]  # fmt: skip
    return Delivery(
        id=row["id"], event_id=row["event_id"], event_type=row["event_type"], run_id=row["run_id"],
        integration_external_id=row["integration_external_id"], status=row["status"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "PENDING" else None,
        created_at=row["created_at"], delivered_at=row["delivered_at"], attempts=attempts,
    )  # fmt: skip


# ---- the notifier's queue -------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One run event a subscription may be notified of; `body` is the exact bytes every attempt sends."""

    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    run_id: uuid.UUID
    integration_id: uuid.UUID
    integration_external_id: str
    body: str


async def subscribers(conn: asyncpg.Connection, notification: Notification) -> list[uuid.UUID]:
    """The enabled subscriptions to `notification`: of its type, created before it happened, and either the
    organization's or its integration's team's. An integration deleted since (its run was cancelled by the
    deletion) is no team's any more: only organization subscriptions hear of it."""
    rows = await conn.fetch(
        """
        SELECT w.id FROM webhooks w
        LEFT JOIN integrations i ON i.id = $3
        WHERE w.enabled AND $1 = ANY(w.events) AND w.created_at <= $2
          AND (w.team_id IS NULL OR w.team_id = i.owning_team_id)
        """,
        notification.event_type, notification.occurred_at, notification.integration_id,
    )  # fmt: skip
    return [row["id"] for row in rows]


async def queue(
    conn: asyncpg.Connection, rows: Sequence[tuple[uuid.UUID, uuid.UUID, Notification]], now: datetime
) -> int:
    """Queue deliveries, due now; a row already queued stays as it is."""
    result = await conn.fetchval(
        """
        WITH added AS (
            INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, run_id, integration_external_id,
                                            body, next_attempt_at, created_at)
            SELECT * , $8::timestamptz, $8::timestamptz
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::uuid[], $6::text[], $7::text[])
            ON CONFLICT DO NOTHING
            RETURNING 1
        ) SELECT count(*) FROM added
        """,
        [d for d, _, _ in rows], [w for _, w, _ in rows], [n.event_id for _, _, n in rows],
        [n.event_type for _, _, n in rows], [n.run_id for _, _, n in rows],
        [n.integration_external_id for _, _, n in rows], [n.body for _, _, n in rows], now,
    )  # fmt: skip
    return int(result)


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for one attempt: where it goes, signed with what, and which attempt this is."""

    id: uuid.UUID
    webhook_id: uuid.UUID
    event_type: str
    url: str
    secret_enc: bytes
    body: str
    attempt: int


async def claim_due(conn: asyncpg.Connection, now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    """Claim up to `limit` due deliveries of enabled subscriptions, each for one attempt (inside the caller's
    transaction). The claim pushes the row's due time past the attempt's deadline and records the attempt as
    started: if the notifier dies before it records the outcome, the row is due again when the lease ends."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE d.status = 'PENDING' AND d.next_attempt_at <= $1 AND w.enabled
            ORDER BY d.next_attempt_at
            LIMIT $2
            FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $1 + $3::interval
        FROM due, webhooks w
        WHERE d.id = due.id AND w.id = d.webhook_id
        RETURNING d.id, d.webhook_id, d.event_type, w.url, w.secret_enc, d.body, d.attempts
        """,
        now, limit, lease,
    )  # fmt: skip
    await conn.executemany(
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at) VALUES ($1, $2, $3)",
        [(row["id"], row["attempts"], now) for row in rows],
    )
    return [
        Claimed(id=r["id"], webhook_id=r["webhook_id"], event_type=r["event_type"], url=r["url"],
                secret_enc=bytes(r["secret_enc"]), body=r["body"], attempt=r["attempts"])
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    duration_ms: int
    status_code: int | None
    error: str | None
    delivered: bool


async def record_outcome(
    conn: asyncpg.Connection, claimed: Claimed, outcome: Outcome, now: datetime, retry_at: datetime | None
) -> None:
    """The attempt's outcome; the delivery is DELIVERED, due again at `retry_at`, or (None) FAILED for good.

    A late outcome (its lease ran out and another attempt started) is recorded on its attempt, but only
    a success changes the delivery: the newer attempt owns the schedule."""
    await conn.execute(
        "UPDATE webhook_attempts SET duration_ms = $3, status_code = $4, error = $5 "
        "WHERE delivery_id = $1 AND attempt = $2",
        claimed.id, claimed.attempt, outcome.duration_ms, outcome.status_code, outcome.error,
    )  # fmt: skip
    if outcome.delivered:
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'DELIVERED', delivered_at = $2 "
            "WHERE id = $1 AND status = 'PENDING'",
            claimed.id, now,
        )  # fmt: skip
        return
    await conn.execute(
        "UPDATE webhook_deliveries SET status = CASE WHEN $3::timestamptz IS NULL THEN 'FAILED' ELSE status END, "
        "next_attempt_at = coalesce($3, next_attempt_at) WHERE id = $1 AND attempts = $2 AND status = 'PENDING'",
        claimed.id, claimed.attempt, retry_at,
    )  # fmt: skip
