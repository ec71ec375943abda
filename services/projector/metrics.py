"""What a committed batch adds to the projector's metrics (defined in shared.metrics): its reports' fate,
and the runs it ended (status, duration from start to outcome, assets a success changed)."""

from __future__ import annotations

from services.core.runs import RunStatus
from services.projector.handlers import BatchOutcome
from shared.metrics import PROJECTOR


def record_batch(outcome: BatchOutcome) -> None:
    for name, value in (("applied", outcome.applied), ("ignored", outcome.ignored), ("duplicate", outcome.duplicates)):
        PROJECTOR.events.labels(name).inc(value)
    PROJECTOR.dead_letters.labels("connector_reports").inc(outcome.dead_lettered)
    for run in outcome.finished:
        PROJECTOR.runs_finished.labels(run.status.value, run.kind, run.trigger).inc()
        if run.completed_at is not None:
            began = run.started_at or run.requested_at  # a run cancelled while queued never started
            PROJECTOR.run_seconds.labels(run.status.value).observe((run.completed_at - began).total_seconds())
        if run.status is RunStatus.SUCCESS:
            for change in ("created", "updated", "deleted"):
                PROJECTOR.assets_changed.labels(change).inc(getattr(run.counts, change))
