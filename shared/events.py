"""The versioned event envelope and the event/command types that travel between services.

Every message on every topic is one `Envelope` serialised as JSON. Consumers dispatch on `type`
and read `payload` with the matching payload model. `seq` is set only on events that the run log
accepted (topic RUN_EVENTS); connector reports carry `seq = null`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENVELOPE_VERSION = 1


class EventType(StrEnum):
    # Run lifecycle facts (the run log).
    RUN_REQUESTED = "run.requested.v1"
    RUN_CANCEL_REQUESTED = "run.cancel_requested.v1"
    RUN_STARTED = "run.started.v1"
    RUN_PROGRESSED = "run.progressed.v1"
    ASSETS_CHANGED = "run.assets_changed.v1"
    RUN_SUCCEEDED = "run.succeeded.v1"
    RUN_FAILED = "run.failed.v1"
    RUN_CANCELLED = "run.cancelled.v1"
    # Liveness only: updates the heartbeat, never the run log.
    RUN_HEARTBEAT = "run.heartbeat.v1"
    # Commands to the connector.
    START_RUN = "command.start_run.v1"
    CANCEL_RUN = "command.cancel_run.v1"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One message. `event_id` is globally unique and is what consumers deduplicate on."""

    model_config = ConfigDict(frozen=True)

    envelope_version: int = ENVELOPE_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    occurred_at: datetime = Field(default_factory=utcnow)
    integration_id: uuid.UUID
    integration_external_id: str
    run_id: uuid.UUID
    seq: int | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


class AssetCountsPayload(BaseModel):
    assets_processed: int = 0
    assets_created: int = 0
    assets_updated: int = 0
    assets_deleted: int = 0


class RunRequested(BaseModel):
    trigger: str  # "manual" | "schedule"
    requested_by: str | None = None


class RunCancelRequested(BaseModel):
    requested_by: str | None = None


class RunStarted(BaseModel):
    connector_id: str


class RunProgressed(BaseModel):
    counts: AssetCountsPayload
    message: str | None = None


class Asset(BaseModel):
    """One discovered asset. `key` is unique within an integration; `fingerprint` changes iff content does."""

    key: str
    kind: str  # schema | table | view | materialized_view | foreign_table | column
    name: str
    parent_key: str | None = None
    fingerprint: str
    attributes: dict[str, Any] = Field(default_factory=dict)


class AssetsChanged(BaseModel):
    upserted: list[Asset] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)


class RunFinished(BaseModel):
    """Payload of succeeded, failed and cancelled."""

    counts: AssetCountsPayload
    message: str | None = None


class RunHeartbeat(BaseModel):
    connector_id: str


class StartRun(BaseModel):
    source: str


class CancelRun(BaseModel):
    requested_by: str | None = None
