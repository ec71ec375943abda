"""The pure run state machine: transitions, absorbing terminal states, fencing, decisions."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.core.errors import AlreadyRunning, TransitionRejected
from services.core.runs import (
    SYSTEM,
    AbortRun,
    CancelRun,
    RecordTask,
    Requester,
    RequestRun,
    RunState,
    RunStatus,
    decide,
    evolve,
)
from shared.events import (
    AssetCountsPayload,
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    LineageEdgePayload,
    LineageReported,
    LineageReportedPayload,
    ProgressedPayload,
    RunCancelled,
    RunCancelRequested,
    RunFailed,
    RunOwner,
    RunProgressed,
    RunStarted,
    RunSucceeded,
    StartedPayload,
    parse_report,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INTEGRATION = uuid.uuid4()
C1 = RunOwner(connector_id="c1", attempt=1)


def requested() -> RunState:
    [event] = decide(None, RequestRun(uuid.uuid4(), INTEGRATION, "demo", "manual", Requester("tester", "7"), T0))
    return evolve(None, event)


def about(state: RunState, at: datetime = T0, owner: RunOwner | None = C1) -> dict:
    return {"occurred_at": at, "integration_id": state.integration_id, "run_id": state.run_id, "owner": owner,
            "integration_external_id": state.integration_external_id}  # fmt: skip


def started(state: RunState, owner: RunOwner = C1, at: datetime = T0) -> RunState:
    payload = StartedPayload(connector_id=owner.connector_id, attempt=owner.attempt)
    return evolve(state, RunStarted(**about(state, at, owner), payload=payload))


def finished(counts: int = 0, message: str = "done") -> FinishedPayload:
    return FinishedPayload(counts=AssetCountsPayload(assets_processed=counts), message=message)


def test_request_creates_a_queued_run_at_version_one():
    state = requested()
    assert state.status is RunStatus.QUEUED
    assert state.version == 1
    assert state.requested_at == T0


def test_started_then_succeeded_records_owner_counts_and_completion_time():
    state = started(requested(), at=T0 + timedelta(seconds=1))
    assert state.status is RunStatus.RUNNING and state.started_at == T0 + timedelta(seconds=1)
    assert state.owner == C1
    state = evolve(state, RunSucceeded(**about(state, T0 + timedelta(seconds=5)), payload=finished(42)))
    assert state.status is RunStatus.SUCCESS
    assert state.counts.processed == 42
    assert state.completed_at == T0 + timedelta(seconds=5)
    assert state.version == 3


def late_events(state: RunState) -> list:
    return [
        RunStarted(**about(state), payload=StartedPayload(connector_id="c1")),
        RunProgressed(**about(state), payload=ProgressedPayload(counts=AssetCountsPayload())),
        AssetsChanged(**about(state), payload=AssetsChangedPayload()),
        RunSucceeded(**about(state), payload=finished()),
        RunFailed(**about(state), payload=finished()),
    ]


@pytest.mark.parametrize("terminal", [RunFailed, RunCancelled])
@pytest.mark.parametrize("late", range(5))
def test_terminal_states_absorb_every_later_event(terminal, late):
    state = started(requested())
    state = evolve(state, terminal(**about(state), payload=finished()))
    with pytest.raises(TransitionRejected):
        evolve(state, late_events(state)[late])


def test_success_before_start_is_rejected():
    state = requested()
    with pytest.raises(TransitionRejected):
        evolve(state, RunSucceeded(**about(state, owner=None), payload=finished()))


def test_second_start_is_rejected():
    state = started(requested())
    with pytest.raises(TransitionRejected):
        started(state, RunOwner(connector_id="c2", attempt=1))


def test_reports_from_another_connector_than_the_owner_are_rejected():
    state = started(requested(), C1)
    intruder = RunOwner(connector_id="c2", attempt=1)
    for event in late_events(state)[1:]:
        with pytest.raises(TransitionRejected, match="belongs to connector 'c1'"):
            evolve(state, event.model_copy(update={"owner": intruder}))


def test_reports_from_an_earlier_attempt_of_the_same_connector_are_rejected():
    state = started(requested(), RunOwner(connector_id="c1", attempt=2))
    with pytest.raises(TransitionRejected, match="attempt 2"):
        evolve(state, RunSucceeded(**about(state, owner=RunOwner(connector_id="c1", attempt=1)), payload=finished()))


def test_a_connector_report_before_the_run_started_is_rejected():
    state = requested()
    with pytest.raises(TransitionRejected, match="before run"):
        evolve(state, RunProgressed(**about(state), payload=ProgressedPayload(counts=AssetCountsPayload())))


def test_a_start_on_behalf_of_another_connector_is_rejected():
    state = requested()
    forged = RunStarted(**about(state, owner=C1), payload=StartedPayload(connector_id="c2", attempt=1))
    with pytest.raises(TransitionRejected, match="another connector"):
        evolve(state, forged)


def test_control_plane_events_apply_whoever_owns_the_run():
    state = started(requested(), C1)
    state = evolve(state, RunCancelRequested(**about(state, owner=None)))
    assert state.cancel_requested and state.owner == C1


def test_requesting_while_active_is_already_running():
    with pytest.raises(AlreadyRunning):
        decide(requested(), RequestRun(uuid.uuid4(), INTEGRATION, "demo", "manual", SYSTEM, T0))


def test_cancelling_a_queued_run_ends_it_at_once():
    state = requested()
    events = decide(state, CancelRun(requested_by=Requester("alice", "3"), at=T0))
    assert [type(e) for e in events] == [RunCancelRequested, RunCancelled]
    for event in events:
        state = evolve(state, event)
    assert state.status is RunStatus.CANCELLED and state.cancel_requested


def test_cancelling_a_running_run_only_sets_the_flag_and_is_idempotent():
    state = started(requested())
    [event] = decide(state, CancelRun(requested_by=Requester("alice", "3"), at=T0))
    assert isinstance(event, RunCancelRequested) and event.owner is None
    state = evolve(state, event)
    assert state.status is RunStatus.RUNNING and state.cancel_requested
    assert decide(state, CancelRun(requested_by=Requester("alice", "3"), at=T0)) == []


def test_cancelling_or_aborting_a_finished_run_decides_nothing():
    state = started(requested())
    state = evolve(state, RunFailed(**about(state), payload=finished()))
    assert decide(state, CancelRun(requested_by=SYSTEM, at=T0)) == []
    assert decide(state, AbortRun(reason="silent", at=T0)) == []


def test_aborting_fails_a_silent_run_with_the_reason_and_keeps_its_counts():
    state = started(requested())
    progressed = ProgressedPayload(counts=AssetCountsPayload(assets_processed=7))
    state = evolve(state, RunProgressed(**about(state), payload=progressed))
    [event] = decide(state, AbortRun(reason="no heartbeat for 15s", at=T0))
    state = evolve(state, event)
    assert state.status is RunStatus.FAILED
    assert state.message == "no heartbeat for 15s"
    assert state.counts.processed == 7


def test_aborting_a_run_whose_cancel_was_requested_ends_it_cancelled():
    state = started(requested())
    state = evolve(state, decide(state, CancelRun(requested_by=Requester("bob", "4"), at=T0))[0])
    [event] = decide(state, AbortRun(reason="no heartbeat", at=T0))
    assert evolve(state, event).status is RunStatus.CANCELLED


def test_a_malformed_report_is_refused_at_the_edge():
    state = started(requested())
    good = RunSucceeded(**about(state), payload=finished()).model_dump(mode="json")
    good["payload"]["counts"]["assets_processed"] = "many"
    with pytest.raises(ValidationError):
        parse_report(json.dumps(good).encode())


def test_an_unknown_report_type_is_refused_at_the_edge():
    state = started(requested())
    unknown = RunSucceeded(**about(state), payload=finished()).model_dump(mode="json") | {"type": "run.exploded.v1"}
    with pytest.raises(ValidationError):
        parse_report(json.dumps(unknown).encode())


def test_an_event_naming_another_integration_is_rejected():
    state = requested()
    stray = RunStarted(**about(state), payload=StartedPayload(connector_id="c1")).model_copy(
        update={"integration_id": uuid.uuid4()}
    )
    with pytest.raises(TransitionRejected, match="not the run's"):
        evolve(state, stray)


def test_a_request_carries_the_task_view_of_the_run():
    run_id, task_id = uuid.uuid4(), uuid.uuid4()
    command = RequestRun(run_id, INTEGRATION, "demo", "system", SYSTEM, T0, task_id=task_id, scope="db/sales",
                         force_recursive=True)  # fmt: skip
    state = evolve(None, decide(None, command)[0])
    assert (state.kind, state.task_id, state.scope, state.force_recursive, state.created_by) == (
        "sync",
        task_id,
        "db/sales",
        True,
        None,
    )
    assert state.updated_at == T0


def test_a_log_without_task_ids_uses_the_run_id_as_the_task_id():
    state = requested()
    assert state.task_id == state.run_id
    assert state.created_by == "7"


def test_a_cancel_records_who_cancelled_once_the_run_ends_cancelled():
    state = started(requested())
    state = evolve(state, decide(state, CancelRun(requested_by=Requester("alice", "3"), at=T0))[0])
    later = T0 + timedelta(seconds=2)
    state = evolve(state, RunCancelled(**about(state, later), payload=finished()))
    assert (state.status, state.canceled_by, state.updated_at) == (RunStatus.CANCELLED, "3", later)


def test_a_recorded_task_is_requested_started_and_succeeded_at_once_by_the_control_plane():
    command = RecordTask(uuid.uuid4(), INTEGRATION, "demo", "delete", Requester("alice", "3"), T0, uuid.uuid4(),
                         "db/sales", "Deleted.", deleted=("db/sales", "db/sales/t"))  # fmt: skip
    events = decide(None, command)
    assert [type(e).__name__ for e in events] == ["RunRequested", "RunStarted", "AssetsChanged", "RunSucceeded"]
    state = None
    for event in events:
        state = evolve(state, event)
    assert state is not None
    assert (state.status, state.kind, state.task_id, state.trigger) == (
        RunStatus.SUCCESS,
        "delete",
        command.task_id,
        "manual",
    )
    with pytest.raises(AlreadyRunning):
        decide(state, command)


def test_an_import_run_carries_its_upload_and_stages_lineage_only_while_running():
    upload_id = uuid.uuid4()
    [event] = decide(None, RequestRun(uuid.uuid4(), INTEGRATION, "demo", "manual", SYSTEM, T0, upload_id=upload_id))
    assert event.payload.upload_id == upload_id
    queued = evolve(None, event)
    assert queued.upload_id == upload_id
    lineage = LineageReportedPayload(edges=[LineageEdgePayload(from_integration_id=INTEGRATION, from_key="a",
                                                               to_integration_id=INTEGRATION, to_key="b")])  # fmt: skip
    with pytest.raises(TransitionRejected, match=r"before run .* started"):
        evolve(queued, LineageReported(**about(queued), payload=lineage))
    with pytest.raises(TransitionRejected, match="before it started"):  # from the control plane (no owner)
        evolve(queued, LineageReported(**about(queued, owner=None), payload=lineage))
    running = started(queued)
    staged = evolve(running, LineageReported(**about(running), payload=lineage))
    assert (staged.status, staged.version) == (RunStatus.RUNNING, running.version + 1)
    # It is a connector report like the others: parsed at the edge, fenced by owner.
    assert parse_report(LineageReported(**about(running), payload=lineage).to_bytes()).payload == lineage
    with pytest.raises(TransitionRejected):
        evolve(running, LineageReported(**about(running, owner=RunOwner(connector_id="c2", attempt=1)),
                                        payload=lineage))  # fmt: skip
