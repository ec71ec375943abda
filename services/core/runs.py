"""The run state machine, pure: `decide(state, command) -> events` and `evolve(state, event) -> state`.

QUEUED (requested, not yet picked up by a connector) -> RUNNING -> SUCCESS | FAILED | CANCELLED.
Terminal states are absorbing: `evolve` rejects every event for a finished run, so the log records
it as ignored instead of applying it. API dialects that know only RUNNING show QUEUED as RUNNING.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from pydantic import ValidationError

from services.core.errors import AlreadyRunning, TransitionRejected
from shared.events import (
    AssetCountsPayload,
    Envelope,
    EventType,
    RunCancelRequested,
    RunFinished,
    RunProgressed,
    RunRequested,
)


class RunStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return not self.is_terminal


TERMINAL_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})


@dataclass(frozen=True)
class AssetCounts:
    processed: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0

    @classmethod
    def from_payload(cls, p: AssetCountsPayload) -> AssetCounts:
        return cls(p.assets_processed, p.assets_created, p.assets_updated, p.assets_deleted)

    def to_payload(self) -> AssetCountsPayload:
        return AssetCountsPayload(
            assets_processed=self.processed,
            assets_created=self.created,
            assets_updated=self.updated,
            assets_deleted=self.deleted,
        )


@dataclass(frozen=True)
class RunState:
    run_id: uuid.UUID
    integration_id: uuid.UUID
    integration_external_id: str
    status: RunStatus
    trigger: str
    requested_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    message: str | None = None
    counts: AssetCounts = AssetCounts()
    cancel_requested: bool = False
    version: int = 0  # seq of the last applied event


# ---- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRun:
    run_id: uuid.UUID
    integration_id: uuid.UUID
    integration_external_id: str
    trigger: str
    requested_by: str | None
    at: datetime


@dataclass(frozen=True)
class CancelRun:
    requested_by: str | None
    at: datetime


@dataclass(frozen=True)
class ReapRun:
    """The connector stopped heartbeating (or never picked the run up): end the run."""

    reason: str
    at: datetime


Command = RequestRun | CancelRun | ReapRun


def decide(state: RunState | None, command: Command) -> list[Envelope]:
    if isinstance(command, RequestRun):
        if state is not None and state.status.is_active:
            raise AlreadyRunning(f"run {state.run_id} is already {state.status.value}")
        return [
            Envelope(
                type=EventType.RUN_REQUESTED,
                occurred_at=command.at,
                integration_id=command.integration_id,
                integration_external_id=command.integration_external_id,
                run_id=command.run_id,
                payload=RunRequested(trigger=command.trigger, requested_by=command.requested_by).model_dump(),
            )
        ]
    if state is None or state.status.is_terminal:
        return []  # cancelling or reaping a finished run is a no-op, never an error
    if isinstance(command, CancelRun):
        events = []
        if not state.cancel_requested:
            events.append(
                _event(
                    state,
                    EventType.RUN_CANCEL_REQUESTED,
                    command.at,
                    RunCancelRequested(requested_by=command.requested_by).model_dump(),
                )
            )
        if state.status is RunStatus.QUEUED:
            # Nothing is executing yet: end it now rather than wait for a connector to pick it up.
            cancelled = RunFinished(counts=state.counts.to_payload(), message="Cancelled before it started.")
            events.append(_event(state, EventType.RUN_CANCELLED, command.at, cancelled.model_dump()))
        return events
    # ReapRun: a run whose cancellation was requested ends CANCELLED, anything else FAILED.
    if state.cancel_requested:
        message = f"Cancelled; the connector did not confirm the cancellation ({command.reason})."
        kind = EventType.RUN_CANCELLED
    else:
        message = command.reason
        kind = EventType.RUN_FAILED
    payload = RunFinished(counts=state.counts.to_payload(), message=message).model_dump()
    return [_event(state, kind, command.at, payload)]


def _event(state: RunState, kind: EventType, at: datetime, payload: dict[str, object]) -> Envelope:
    return Envelope(
        type=kind,
        occurred_at=at,
        integration_id=state.integration_id,
        integration_external_id=state.integration_external_id,
        run_id=state.run_id,
        payload=payload,
    )


# ---- evolve ---------------------------------------------------------------------------------


def evolve(state: RunState | None, event: Envelope) -> RunState:
    """Apply one event. Raises TransitionRejected when the event does not fit the current state."""
    try:
        return _evolve(state, event)
    except ValidationError as malformed:
        # A payload that does not match its type is rejected like any other misfit, never half-applied.
        raise TransitionRejected(f"{event.type} has a malformed payload: {malformed.error_count()} error(s)") from None


def _evolve(state: RunState | None, event: Envelope) -> RunState:
    if event.type == EventType.RUN_REQUESTED:
        if state is not None:
            raise TransitionRejected(f"run {event.run_id} was already requested")
        requested = RunRequested.model_validate(event.payload)
        return RunState(
            run_id=event.run_id,
            integration_id=event.integration_id,
            integration_external_id=event.integration_external_id,
            status=RunStatus.QUEUED,
            trigger=requested.trigger,
            requested_at=event.occurred_at,
            version=1,
        )
    if state is None:
        raise TransitionRejected(f"{event.type} for unknown run {event.run_id}")
    if event.integration_id != state.integration_id:
        raise TransitionRejected(f"{event.type} names integration {event.integration_id}, not the run's")
    if state.status.is_terminal:
        raise TransitionRejected(f"run {state.run_id} is already {state.status.value}; {event.type} ignored")
    nxt = state.version + 1
    match event.type:
        case EventType.RUN_CANCEL_REQUESTED:
            return replace(state, cancel_requested=True, version=nxt)
        case EventType.RUN_STARTED:
            if state.status is not RunStatus.QUEUED:
                raise TransitionRejected(f"run {state.run_id} was already started")
            return replace(state, status=RunStatus.RUNNING, started_at=event.occurred_at, version=nxt)
        case EventType.RUN_PROGRESSED:
            progressed = RunProgressed.model_validate(event.payload)
            return replace(
                state,
                status=RunStatus.RUNNING,
                counts=AssetCounts.from_payload(progressed.counts),
                message=progressed.message or state.message,
                version=nxt,
            )
        case EventType.ASSETS_CHANGED:
            if state.status is not RunStatus.RUNNING:
                raise TransitionRejected(f"assets reported for run {state.run_id} before it started")
            return replace(state, version=nxt)
        case EventType.RUN_SUCCEEDED | EventType.RUN_FAILED | EventType.RUN_CANCELLED:
            if event.type == EventType.RUN_SUCCEEDED and state.status is not RunStatus.RUNNING:
                raise TransitionRejected(f"run {state.run_id} cannot succeed before it started")
            finished = RunFinished.model_validate(event.payload)
            return replace(
                state,
                status=_TERMINAL_BY_EVENT[event.type],
                counts=AssetCounts.from_payload(finished.counts),
                message=finished.message,
                completed_at=event.occurred_at,
                version=nxt,
            )
    raise TransitionRejected(f"{event.type} is not a run log event")


_TERMINAL_BY_EVENT = {
    EventType.RUN_SUCCEEDED: RunStatus.SUCCESS,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED,
}
