"""The pure run state machine: transitions, absorbing terminal states, decisions."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.core.errors import AlreadyRunning, TransitionRejected
from services.core.runs import CancelRun, ReapRun, RequestRun, RunState, RunStatus, decide, evolve
from shared.events import AssetCountsPayload, Envelope, EventType, RunFinished, RunProgressed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INTEGRATION = uuid.uuid4()


def requested() -> RunState:
    [event] = decide(None, RequestRun(uuid.uuid4(), INTEGRATION, "demo", "manual", "tester", T0))
    return evolve(None, event)


def fact(state: RunState, kind: EventType, payload: dict | None = None, at: datetime = T0) -> Envelope:
    return Envelope(type=kind, occurred_at=at, integration_id=state.integration_id,
                    integration_external_id=state.integration_external_id, run_id=state.run_id,
                    payload=payload or {})  # fmt: skip


def finished(counts: int = 0, message: str = "done") -> dict:
    return RunFinished(counts=AssetCountsPayload(assets_processed=counts), message=message).model_dump()


def test_request_creates_a_queued_run_at_version_one():
    state = requested()
    assert state.status is RunStatus.QUEUED
    assert state.version == 1
    assert state.requested_at == T0


def test_started_then_succeeded_records_counts_and_completion_time():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}, T0 + timedelta(seconds=1)))
    assert state.status is RunStatus.RUNNING and state.started_at == T0 + timedelta(seconds=1)
    state = evolve(state, fact(state, EventType.RUN_SUCCEEDED, finished(42), T0 + timedelta(seconds=5)))
    assert state.status is RunStatus.SUCCESS
    assert state.counts.processed == 42
    assert state.completed_at == T0 + timedelta(seconds=5)
    assert state.version == 3


@pytest.mark.parametrize("terminal", [EventType.RUN_FAILED, EventType.RUN_CANCELLED])
@pytest.mark.parametrize(
    "late", [EventType.RUN_STARTED, EventType.RUN_PROGRESSED, EventType.RUN_SUCCEEDED, EventType.RUN_FAILED]
)
def test_terminal_states_absorb_every_later_event(terminal, late):
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    state = evolve(state, fact(state, terminal, finished()))
    payload = finished() if late in (EventType.RUN_SUCCEEDED, EventType.RUN_FAILED) else (
        RunProgressed(counts=AssetCountsPayload()).model_dump() if late == EventType.RUN_PROGRESSED
        else {"connector_id": "c2"})  # fmt: skip
    with pytest.raises(TransitionRejected):
        evolve(state, fact(state, late, payload))


def test_success_before_start_is_rejected():
    state = requested()
    with pytest.raises(TransitionRejected):
        evolve(state, fact(state, EventType.RUN_SUCCEEDED, finished()))


def test_second_start_is_rejected():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    with pytest.raises(TransitionRejected):
        evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c2"}))


def test_requesting_while_active_is_already_running():
    with pytest.raises(AlreadyRunning):
        decide(requested(), RequestRun(uuid.uuid4(), INTEGRATION, "demo", "manual", None, T0))


def test_cancelling_a_queued_run_ends_it_at_once():
    state = requested()
    events = decide(state, CancelRun(requested_by="alice", at=T0))
    assert [e.type for e in events] == [EventType.RUN_CANCEL_REQUESTED, EventType.RUN_CANCELLED]
    for event in events:
        state = evolve(state, event)
    assert state.status is RunStatus.CANCELLED and state.cancel_requested


def test_cancelling_a_running_run_only_sets_the_flag_and_is_idempotent():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    [event] = decide(state, CancelRun(requested_by="alice", at=T0))
    assert event.type == EventType.RUN_CANCEL_REQUESTED
    state = evolve(state, event)
    assert state.status is RunStatus.RUNNING and state.cancel_requested
    assert decide(state, CancelRun(requested_by="alice", at=T0)) == []


def test_cancelling_or_reaping_a_finished_run_decides_nothing():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    state = evolve(state, fact(state, EventType.RUN_FAILED, finished()))
    assert decide(state, CancelRun(requested_by=None, at=T0)) == []
    assert decide(state, ReapRun(reason="silent", at=T0)) == []


def test_reaping_fails_a_silent_run_with_the_reason_and_keeps_its_counts():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    state = evolve(state, fact(state, EventType.RUN_PROGRESSED,
                               RunProgressed(counts=AssetCountsPayload(assets_processed=7)).model_dump()))  # fmt: skip
    [event] = decide(state, ReapRun(reason="no heartbeat for 15s", at=T0))
    state = evolve(state, event)
    assert state.status is RunStatus.FAILED
    assert state.message == "no heartbeat for 15s"
    assert state.counts.processed == 7


def test_reaping_a_run_whose_cancel_was_requested_ends_it_cancelled():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    state = evolve(state, decide(state, CancelRun(requested_by="bob", at=T0))[0])
    [event] = decide(state, ReapRun(reason="no heartbeat", at=T0))
    assert evolve(state, event).status is RunStatus.CANCELLED


def test_a_malformed_payload_is_rejected_not_half_applied():
    state = requested()
    state = evolve(state, fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}))
    with pytest.raises(TransitionRejected, match="malformed payload"):
        evolve(state, fact(state, EventType.RUN_SUCCEEDED, {"counts": {"assets_processed": "many"}}))


def test_an_event_naming_another_integration_is_rejected():
    state = requested()
    stray = fact(state, EventType.RUN_STARTED, {"connector_id": "c1"}).model_copy(
        update={"integration_id": uuid.uuid4()}
    )
    with pytest.raises(TransitionRejected, match="not the run's"):
        evolve(state, stray)
