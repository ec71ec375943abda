"""What a subscriber is told about a run event (pure): its notification type, body, and delivery id."""

from __future__ import annotations

import json
import uuid

from services.core.store.webhooks import Notification
from services.core.webhooks import WebhookEvent
from shared.events import RunCancelled, RunFailed, RunLogEvent, RunSucceeded

# Namespace of delivery ids: uuid5 of (subscription, run event), so one event has one id per subscription
# however often it is read from the topic, queued or sent. Receivers deduplicate on it.
DELIVERY_NAMESPACE = uuid.UUID("6f1c2b1e-7a43-5e0f-9d7e-0b6f4c1d2a38")


def notification_type(event: RunLogEvent) -> WebhookEvent | None:
    """The type of notification a run event is, if any: only ends of runs are notified."""
    if isinstance(event, RunFailed | RunCancelled) and event.payload.reaped and event.owner is None:
        return WebhookEvent.RUN_REAPED  # only the control plane reaps (a connector's report cannot claim to)
    if isinstance(event, RunSucceeded):
        return WebhookEvent.RUN_SUCCEEDED
    if isinstance(event, RunFailed):
        return WebhookEvent.RUN_FAILED
    if isinstance(event, RunCancelled):
        return WebhookEvent.RUN_CANCELLED
    return None


_STATUS: dict[type[RunSucceeded | RunFailed | RunCancelled], str] = {
    RunSucceeded: "SUCCESS", RunFailed: "FAILED", RunCancelled: "CANCELLED"
}  # fmt: skip
NOTIFIED_TYPES = frozenset(end.model_fields["type"].default for end in _STATUS)  # the only events notified


def notification_for(event: RunLogEvent) -> Notification | None:
    """The notification of `event`, with the body every subscriber and every attempt gets; None: not notified."""
    kind = notification_type(event)
    if kind is None:
        return None
    assert isinstance(event, RunSucceeded | RunFailed | RunCancelled)
    counts = event.payload.counts
    body = {
        "type": kind.value,
        "eventId": str(event.event_id),
        "occurredAt": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "integration": {"id": str(event.integration_id), "externalId": event.integration_external_id},
        "run": {
            "id": str(event.run_id),
            "status": _STATUS[type(event)],
            "message": event.payload.message,
            "assetsProcessed": counts.assets_processed,
            "assetsCreated": counts.assets_created,
            "assetsUpdated": counts.assets_updated,
            "assetsDeleted": counts.assets_deleted,
        },
    }
    return Notification(
        event_id=event.event_id, event_type=kind.value, occurred_at=event.occurred_at, run_id=event.run_id,
        integration_id=event.integration_id, integration_external_id=event.integration_external_id,
        body=json.dumps(body, separators=(",", ":")),
    )  # fmt: skip


def delivery_id(webhook_id: uuid.UUID, event_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{webhook_id}/{event_id}")
