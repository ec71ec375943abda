"""Live streams' subscriber queues: bounded, and a subscriber that falls behind is ended rather than buffered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.api.run_streams import Subscription
from services.core.sources.spec import SourceReport
from services.core.store.timeline import LoggedEvent
from shared.events import MAX_RUN_WARNINGS, WarningsReported, WarningsReportedPayload, parse_report


def event(position: int) -> LoggedEvent:
    return LoggedEvent(position, uuid.uuid4(), 1, "run.progressed.v1", datetime.now(UTC), uuid.uuid4(), "shop", None,
                       {})  # fmt: skip


async def test_a_subscriber_gets_what_it_was_offered_in_order():
    subscription = Subscription(lambda _: True, size=3)
    for position in (1, 2, 3):
        subscription.offer(event(position))
    assert [(await subscription.next()).position for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    assert not subscription.ended


async def test_a_subscriber_that_falls_behind_is_ended_and_its_queue_dropped():
    subscription = Subscription(lambda _: True, size=3)
    for position in range(1, 6):
        subscription.offer(event(position))
    assert subscription.ended
    assert await subscription.next() is None  # the stream ends; the client resumes with Last-Event-ID
    subscription.offer(event(6))
    assert subscription._queue.empty()  # nothing more is kept for it


def test_discarding_queued_events_keeps_the_stream_unless_it_was_ended():
    # The console's run page re-reads the run instead of rendering each queued event.
    subscription = Subscription(lambda _: True, size=3)
    for position in (1, 2):
        subscription.offer(event(position))
    assert subscription.discard_queued() and subscription._queue.empty()
    for position in range(3, 8):  # overflows: ended
        subscription.offer(event(position))
    assert not subscription.discard_queued()


def test_a_run_keeps_at_most_the_capped_warnings_per_report():
    with pytest.raises(ValidationError):
        WarningsReportedPayload(warnings=["w"] * (MAX_RUN_WARNINGS + 1))
    payload = WarningsReportedPayload(warnings=["no SELECT on t1"], dropped=3)
    reported = WarningsReported(integration_id=uuid.uuid4(), integration_external_id="shop", run_id=uuid.uuid4(),
                                payload=payload)  # fmt: skip
    assert parse_report(reported.to_bytes()).payload == payload


def test_the_runs_message_names_the_first_warnings_and_counts_the_rest():
    report = SourceReport(limit=7)
    for i in range(9):
        report.warn(f"w{i}")
    assert report.summary() == "w0; w1; w2; w3; w4; and 4 more (in the run's events)"
    assert report.total == 9
