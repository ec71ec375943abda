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
from typing import Any

from services.core.errors import AlreadyRunning, TransitionRejected
from shared.events import (
    AssetCountsPayload,
    CancelRequestedPayload,
    FinishedPayload,
    RequestedPayload,
    RunCancelled,
    RunCancelRequested,
    RunEnded,
    RunFailed,
    RunLogEvent,
    RunOwner,
    RunProgressed,
    RunRequested,
    RunStarted,
    RunSucceeded,
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
    owner: RunOwner | None = None  # the connector claim that started the run; only it may report


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
class AbortRun:
    """End an active run from outside its connector: it went silent, or its reports cannot be applied."""

    reason: str
    at: datetime


Command = RequestRun | CancelRun | AbortRun


def decide(state: RunState | None, command: Command) -> list[RunLogEvent]:
    if isinstance(command, RequestRun):
        if state is not None and state.status.is_active:
            raise AlreadyRunning(f"run {state.run_id} is already {state.status.value}")
        return [
            RunRequested(
                occurred_at=command.at,
                integration_id=command.integration_id,
                integration_external_id=command.integration_external_id,
                run_id=command.run_id,
                payload=RequestedPayload(trigger=command.trigger, requested_by=command.requested_by),
            )
        ]
    if state is None or state.status.is_terminal:
        return []  # cancelling or aborting a finished run is a no-op, never an error
    if isinstance(command, CancelRun):
        events: list[RunLogEvent] = []
        if not state.cancel_requested:
            events.append(
                RunCancelRequested(
                    **_about(state, command.at), payload=CancelRequestedPayload(requested_by=command.requested_by)
                )
            )
        if state.status is RunStatus.QUEUED:
            # Nothing is executing yet: end it now rather than wait for a connector to pick it up.
            finished = FinishedPayload(counts=state.counts.to_payload(), message="Cancelled before it started.")
            events.append(RunCancelled(**_about(state, command.at), payload=finished))
        return events
    # AbortRun: a run whose cancellation was requested ends CANCELLED, anything else FAILED.
    if state.cancel_requested:
        message = f"Cancelled; the connector did not confirm the cancellation ({command.reason})."
        return [RunCancelled(**_about(state, command.at), payload=_finished(state, message))]
    return [RunFailed(**_about(state, command.at), payload=_finished(state, command.reason))]


def _about(state: RunState, at: datetime) -> dict[str, Any]:
    return {
        "occurred_at": at,
        "integration_id": state.integration_id,
        "integration_external_id": state.integration_external_id,
        "run_id": state.run_id,
    }


def _finished(state: RunState, message: str) -> FinishedPayload:
    return FinishedPayload(counts=state.counts.to_payload(), message=message)


# ---- evolve ---------------------------------------------------------------------------------


def evolve(state: RunState | None, event: RunLogEvent) -> RunState:
    """Apply one event. Raises TransitionRejected when the event does not fit the current state."""
    if isinstance(event, RunRequested):
        if state is not None:
            raise TransitionRejected(f"run {event.run_id} was already requested")
        return RunState(
            run_id=event.run_id,
            integration_id=event.integration_id,
            integration_external_id=event.integration_external_id,
            status=RunStatus.QUEUED,
            trigger=event.payload.trigger,
            requested_at=event.occurred_at,
            version=1,
        )
    if state is None:
        raise TransitionRejected(f"{event.type} for unknown run {event.run_id}")
    if event.integration_id != state.integration_id:
        raise TransitionRejected(f"{event.type} names integration {event.integration_id}, not the run's")
    if state.status.is_terminal:
        raise TransitionRejected(f"run {state.run_id} is already {state.status.value}; {event.type} ignored")
    _check_owner(state, event)
    nxt = state.version + 1
    match event:
        case RunCancelRequested():
            return replace(state, cancel_requested=True, version=nxt)
        case RunStarted(payload=started):
            if state.status is not RunStatus.QUEUED:
                raise TransitionRejected(f"run {state.run_id} was already started")
            owner = RunOwner(connector_id=started.connector_id, attempt=started.attempt)
            return replace(state, status=RunStatus.RUNNING, started_at=event.occurred_at, owner=owner, version=nxt)
        case RunProgressed(payload=progressed):
            return replace(
                state,
                counts=AssetCounts.from_payload(progressed.counts),
                message=progressed.message or state.message,
                version=nxt,
            )
        case RunSucceeded() | RunFailed() | RunCancelled():
            if isinstance(event, RunSucceeded) and state.status is not RunStatus.RUNNING:
                raise TransitionRejected(f"run {state.run_id} cannot succeed before it started")
            return replace(
                state,
                status=_TERMINAL_BY_EVENT[type(event)],
                counts=AssetCounts.from_payload(event.payload.counts),
                message=event.payload.message,
                completed_at=event.occurred_at,
                version=nxt,
            )
    # AssetsChanged: staged in the log, applied to the asset store only if the run succeeds.
    if state.status is not RunStatus.RUNNING:
        raise TransitionRejected(f"assets reported for run {state.run_id} before it started")
    return replace(state, version=nxt)


def _check_owner(state: RunState, event: RunLogEvent) -> None:
    """Fencing: a connector's report applies only if it comes from the claim that started the run.

    Events without an owner come from the control plane itself (API, reaper, projector) and always apply."""
    reporter = event.owner
    if reporter is None:
        return
    if isinstance(event, RunStarted):
        if (event.payload.connector_id, event.payload.attempt) != (reporter.connector_id, reporter.attempt):
            raise TransitionRejected(f"run {state.run_id}: a start reported on behalf of another connector")
        return
    if state.owner is None:
        raise TransitionRejected(f"{event.type} from {_who(reporter)} before run {state.run_id} started")
    if reporter != state.owner:
        raise TransitionRejected(
            f"{event.type} from {_who(reporter)}, but run {state.run_id} belongs to {_who(state.owner)}"
        )


def _who(owner: RunOwner) -> str:
    return f"connector '{owner.connector_id}' (attempt {owner.attempt})"


_TERMINAL_BY_EVENT: dict[type[RunEnded], RunStatus] = {
    RunSucceeded: RunStatus.SUCCESS,
    RunFailed: RunStatus.FAILED,
    RunCancelled: RunStatus.CANCELLED,
}
