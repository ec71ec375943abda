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
from typing import Any, Literal

from services.core.errors import AlreadyRunning, TransitionRejected
from shared.events import (
    AssetCountsPayload,
    AssetsChanged,
    AssetsChangedPayload,
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
    StartedPayload,
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
    # The task view of the run (what it is, who asked): from run.requested.v1.
    kind: str = "sync"  # sync | delete | settings
    task_id: uuid.UUID | None = None
    scope: str | None = None
    force_recursive: bool = False
    created_by: str | None = None  # principal id; None: the system
    canceled_by: str | None = None  # principal id of who requested its cancellation
    updated_at: datetime | None = None  # when the last event applied
    upload_id: uuid.UUID | None = None  # the upload a sync imports; None: a crawl of the source

    @property
    def how_to_retry(self) -> str:
        """What a person does to run it again: an import's upload is gone once its run ended."""
        if self.upload_id is not None:
            return "Upload the file again (dbt artifacts: trigger the sync again)."
        return "Trigger the integration again."


# ---- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requester:
    """Who asks: an API key (its name for people, its number as principal id) or the system (both None)."""

    name: str | None = None
    principal_id: str | None = None


SYSTEM = Requester()


@dataclass(frozen=True)
class RequestRun:
    run_id: uuid.UUID
    integration_id: uuid.UUID
    integration_external_id: str
    trigger: str
    requested_by: Requester
    at: datetime
    task_id: uuid.UUID | None = None
    scope: str | None = None
    force_recursive: bool = False
    upload_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CancelRun:
    requested_by: Requester
    at: datetime


@dataclass(frozen=True)
class RecordTask:
    """Work the control plane does at once, recorded as a run that is requested, started and succeeds together:
    a delete of data objects (the asset keys in `deleted`, in events as a connector would report them) or a
    settings change."""

    run_id: uuid.UUID
    integration_id: uuid.UUID
    integration_external_id: str
    kind: Literal["delete", "settings"]
    requested_by: Requester
    at: datetime
    task_id: uuid.UUID
    scope: str | None
    message: str
    deleted: tuple[str, ...] = ()


CONTROL_PLANE = "control-plane"  # the "connector" of runs the control plane executes itself
DELETED_KEYS_PER_EVENT = 20_000  # deleted keys per AssetsChanged event, from a connector or the control plane


@dataclass(frozen=True)
class AbortRun:
    """End an active run from outside its connector: it went silent, or its reports cannot be applied."""

    reason: str
    at: datetime
    reaped: bool = False  # by the reaper (not a report the projector had to reject)


Command = RequestRun | CancelRun | AbortRun | RecordTask


def decide(state: RunState | None, command: Command) -> list[RunLogEvent]:
    if isinstance(command, RequestRun):
        if state is not None and state.status.is_active:
            raise AlreadyRunning(f"run {state.run_id} is already {state.status.value}")
        who = command.requested_by
        return [
            RunRequested(
                occurred_at=command.at,
                integration_id=command.integration_id,
                integration_external_id=command.integration_external_id,
                run_id=command.run_id,
                payload=RequestedPayload(
                    trigger=command.trigger, requested_by=who.name, principal_id=who.principal_id,
                    task_id=command.task_id, scope=command.scope, force_recursive=command.force_recursive,
                    upload_id=command.upload_id,
                ),
            )
        ]  # fmt: skip
    if isinstance(command, RecordTask):
        if state is not None:
            raise AlreadyRunning(f"run {state.run_id} already exists")
        return _record_task(command)
    if state is None or state.status.is_terminal:
        return []  # cancelling or aborting a finished run is a no-op, never an error
    if isinstance(command, CancelRun):
        events: list[RunLogEvent] = []
        if not state.cancel_requested:
            events.append(
                RunCancelRequested(
                    **_about(state, command.at),
                    payload=CancelRequestedPayload(
                        requested_by=command.requested_by.name, principal_id=command.requested_by.principal_id
                    ),
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
        return [RunCancelled(**_about(state, command.at), payload=_finished(state, message, command.reaped))]
    return [RunFailed(**_about(state, command.at), payload=_finished(state, command.reason, command.reaped))]


def _record_task(command: RecordTask) -> list[RunLogEvent]:
    about: dict[str, Any] = {"occurred_at": command.at, "integration_id": command.integration_id,
                             "integration_external_id": command.integration_external_id,
                             "run_id": command.run_id}  # fmt: skip
    who = command.requested_by
    requested = RequestedPayload(
        # A delete is the caller's own request; a settings change is recorded by the system (Immuta's SYSTEM).
        trigger="manual" if command.kind == "delete" and who.principal_id else "system", requested_by=who.name,
        principal_id=who.principal_id,
        kind=command.kind, task_id=command.task_id, scope=command.scope,
    )  # fmt: skip
    events: list[RunLogEvent] = [
        RunRequested(**about, payload=requested),
        RunStarted(**about, payload=StartedPayload(connector_id=CONTROL_PLANE)),
    ]
    for start in range(0, len(command.deleted), DELETED_KEYS_PER_EVENT):
        changed = AssetsChangedPayload(deleted=list(command.deleted[start : start + DELETED_KEYS_PER_EVENT]))
        events.append(AssetsChanged(**about, payload=changed))
    counts = AssetCounts(processed=len(command.deleted), deleted=len(command.deleted))
    events.append(RunSucceeded(**about, payload=FinishedPayload(counts=counts.to_payload(), message=command.message)))
    return events


def _about(state: RunState, at: datetime) -> dict[str, Any]:
    return {
        "occurred_at": at,
        "integration_id": state.integration_id,
        "integration_external_id": state.integration_external_id,
        "run_id": state.run_id,
    }


def _finished(state: RunState, message: str, reaped: bool = False) -> FinishedPayload:
    return FinishedPayload(counts=state.counts.to_payload(), message=message, reaped=reaped)


# ---- evolve ---------------------------------------------------------------------------------


def evolve(state: RunState | None, event: RunLogEvent) -> RunState:
    """Apply one event. Raises TransitionRejected when the event does not fit the current state."""
    if isinstance(event, RunRequested):
        if state is not None:
            raise TransitionRejected(f"run {event.run_id} was already requested")
        requested = event.payload
        return RunState(
            run_id=event.run_id,
            integration_id=event.integration_id,
            integration_external_id=event.integration_external_id,
            status=RunStatus.QUEUED,
            trigger=requested.trigger,
            requested_at=event.occurred_at,
            version=1,
            kind=requested.kind,
            task_id=requested.task_id or event.run_id,
            scope=requested.scope,
            force_recursive=requested.force_recursive,
            created_by=requested.principal_id,
            updated_at=event.occurred_at,
            upload_id=requested.upload_id,
        )
    if state is None:
        raise TransitionRejected(f"{event.type} for unknown run {event.run_id}")
    if event.integration_id != state.integration_id:
        raise TransitionRejected(f"{event.type} names integration {event.integration_id}, not the run's")
    if state.status.is_terminal:
        raise TransitionRejected(f"run {state.run_id} is already {state.status.value}; {event.type} ignored")
    _check_owner(state, event)
    return replace(_evolve_active(state, event), updated_at=event.occurred_at)


def _evolve_active(state: RunState, event: RunLogEvent) -> RunState:
    nxt = state.version + 1
    match event:
        case RunCancelRequested(payload=cancel):
            return replace(state, cancel_requested=True, canceled_by=cancel.principal_id, version=nxt)
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
    # AssetsChanged, LineageReported: staged in the log, applied to the read models only if the run succeeds.
    # WarningsReported: recorded on the run (its timeline), nothing else.
    if state.status is not RunStatus.RUNNING:
        raise TransitionRejected(f"{event.type} for run {state.run_id} before it started")
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
