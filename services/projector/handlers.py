"""Applies one fetched batch of connector reports in one Postgres transaction (idempotent).

Reports are parsed once at the edge. What cannot be parsed, or cannot be applied (a poison run), goes
to `report_dead_letters` with the reason, and the run it names is ended FAILED saying so; every other
run of the batch is applied as usual. Only infrastructure errors fail the batch (to be retried whole).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from pydantic import ValidationError

from services.core.runs import AbortRun, RunState, decide
from services.core.store import liveness, runlog
from services.core.store.dead_letters import DeadLetter, record_dead_letters, storable
from shared.errors import is_retriable
from shared.events import FinishedPayload, RunHeartbeat, RunLogEvent, RunOwner, parse_report_for_log

log = structlog.get_logger()


@dataclass(frozen=True)
class Received:
    """One message as fetched: where it came from, and its bytes."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass
class Batch:
    events: dict[uuid.UUID, list[tuple[RunLogEvent, Received]]] = field(default_factory=lambda: defaultdict(list))
    heartbeats: dict[uuid.UUID, tuple[RunOwner, datetime]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    payload_json: dict[uuid.UUID, bytes] = field(default_factory=dict)  # by event_id: what the log stores


@dataclass
class BatchOutcome:
    applied: int = 0
    ignored: int = 0
    duplicates: int = 0
    heartbeats: int = 0
    dead_lettered: int = 0
    finished: list[RunState] = field(default_factory=list)  # runs this batch ended (for the metrics)


def parse(messages: list[Received]) -> Batch:
    """Group readable reports by run (keeping each run's order); set aside what breaks the contract."""
    batch = Batch()
    for message in messages:
        try:
            logged = parse_report_for_log(message.value or b"")
        except ValidationError as error:
            batch.dead.append(dead_letter(message, f"unreadable report: {_summary(error)}"))
            continue
        report = logged.event
        if report.owner is None:
            batch.dead.append(dead_letter(message, "a connector report without its owner (connector_id, attempt)"))
        elif isinstance(getattr(report, "payload", None), FinishedPayload) and report.payload.reaped:  # type: ignore[union-attr]
            # Only the reaper ends a run as reaped (webhooks announce it as run.reaped): a connector saying so lies.
            batch.dead.append(dead_letter(message, "a connector report claiming the reaper ended the run"))
        elif isinstance(report, RunHeartbeat):
            latest = batch.heartbeats.get(report.run_id)
            if latest is None or latest[1] < report.occurred_at:
                batch.heartbeats[report.run_id] = (report.owner, report.occurred_at)
        else:
            batch.events[report.run_id].append((report, message))
            batch.payload_json[report.event_id] = logged.payload_json
    return batch


async def apply_batch(conn: asyncpg.Connection, batch: Batch, now: datetime) -> BatchOutcome:
    outcome = BatchOutcome()
    async with conn.transaction():
        dead = list(batch.dead)
        for run_id, received in batch.events.items():
            try:
                async with conn.transaction():  # a savepoint: a poison run never takes the batch down
                    result = await runlog.append(conn, run_id, [event for event, _ in received], batch.payload_json)
            except Exception as error:  # the database refused it, or a bug met this run's data
                if is_retriable(error):
                    raise
                reason = f"cannot be applied: {type(error).__name__}: {error}"
                dead.extend(dead_letter(message, reason, event) for event, message in received)
                continue
            outcome.applied += len(result.applied)
            outcome.duplicates += result.duplicates
            outcome.ignored += len(result.ignored)
            if result.applied and result.state is not None and result.state.status.is_terminal:
                outcome.finished.append(result.state)  # terminal is absorbing: this batch ended it
            for event, why in result.ignored:
                log.info("event_ignored", run_id=str(run_id), type=event.type, reason=why)
        if dead:
            outcome.dead_lettered = await _isolated(conn, "dead_letters_not_recorded", record_dead_letters(conn, dead))
            await _abort_runs_of(conn, dead, now)
        outcome.heartbeats = await _isolated(
            conn,
            "heartbeats_dropped",
            liveness.record_heartbeats(
                conn, [(run_id, o.connector_id, o.attempt, at) for run_id, (o, at) in batch.heartbeats.items()]
            ),
        )
    return outcome


async def _isolated(conn: asyncpg.Connection, failure: str, write: Coroutine[Any, Any, int]) -> int:
    """Run `write` in a savepoint: if the database refuses its data, log that and keep the batch."""
    try:
        async with conn.transaction():
            return await write
    except Exception as error:
        if is_retriable(error):
            raise
        log.error(failure, error=f"{type(error).__name__}: {error}")
        return 0


async def _abort_runs_of(conn: asyncpg.Connection, dead: list[DeadLetter], now: datetime) -> None:
    """End every active run named by a dead letter: it will never get the report it is missing."""
    reasons: dict[uuid.UUID, str] = {}
    for letter in dead:
        if letter.run_id is not None:
            reasons.setdefault(letter.run_id, letter.reason)
    for run_id, reason in reasons.items():
        message = (
            f"A report of this run was rejected ({reason}); it is kept in report_dead_letters. "
            "The connector may be a different version than the control plane; trigger the run again."
        )
        if await _isolated(conn, "run_not_aborted", _abort(conn, run_id, message, now)):
            log.error("run_aborted_by_dead_letter", run_id=str(run_id), reason=reason)


async def _abort(conn: asyncpg.Connection, run_id: uuid.UUID, message: str, now: datetime) -> int:
    state = await runlog.load_state(conn, run_id, lock=True)
    events = decide(state, AbortRun(reason=message, at=now))
    if events:
        await runlog.append(conn, run_id, events)
    return len(events)


def dead_letter(message: Received, reason: str, event: RunLogEvent | None = None) -> DeadLetter:
    ids = _identify(message.value) if event is None else {
        "run_id": event.run_id, "integration_id": event.integration_id, "event_id": event.event_id, "type": event.type
    }  # fmt: skip
    return DeadLetter(topic=message.topic, partition=message.partition, offset=message.offset,
                      reason=storable(reason[:2000]), value=message.value, **ids)  # fmt: skip


def _identify(value: bytes | None) -> dict[str, Any]:
    """Best effort: which run and event an unreadable message claims to be about."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, Any] = {"type": storable(str(data["type"])[:200]) if "type" in data else None}
    for name in ("run_id", "integration_id", "event_id"):
        try:
            found[name] = uuid.UUID(str(data.get(name)))
        except ValueError:
            found[name] = None
    return found


def _summary(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{error.error_count()} error(s), first at {location or 'the message'}: {first['msg']}"
