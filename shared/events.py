"""The versioned event contract between services: one model per event type, parsed once at the edge.

Every message on every topic is one event serialised as JSON with the same envelope fields
(`envelope_version`, `event_id`, `type`, `occurred_at`, integration and run ids, `seq`, `payload`).
Consumers parse bytes with `parse_report` / `parse_command` into the class named by `type` (a
discriminated union), and match on classes. `seq` is set only on events the run log accepted (topic
RUN_EVENTS). Connector reports carry `owner`: the connector instance and claim attempt that reported
it; the run log rejects reports from anyone but the run's owner (fencing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ENVELOPE_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---- payloads -------------------------------------------------------------------------------


class AssetCountsPayload(BaseModel):
    assets_processed: int = 0
    assets_created: int = 0
    assets_updated: int = 0
    assets_deleted: int = 0


class RequestedPayload(BaseModel):
    trigger: str  # "manual" | "schedule" | "system"
    requested_by: str | None = None  # the API key's name, for people reading the log
    principal_id: str | None = None  # the API key's number; None: the system (scheduler, registration)
    kind: Literal["sync", "delete", "settings"] = "sync"
    task_id: uuid.UUID | None = None  # None in logs written before tasks existed: the run id stands in
    scope: str | None = None  # the object key a sync or delete is limited to; None: the whole connection
    force_recursive: bool = False  # a sync that also crawls inactive subtrees
    upload_id: uuid.UUID | None = None  # the stored upload a sync imports (CSV/JSONL/dbt); None: a crawl


class CancelRequestedPayload(BaseModel):
    requested_by: str | None = None
    principal_id: str | None = None


class StartedPayload(BaseModel):
    connector_id: str
    attempt: int = Field(default=1, ge=1)  # logs written before fencing existed have no attempt


class ProgressedPayload(BaseModel):
    counts: AssetCountsPayload
    message: str | None = None


class Asset(BaseModel):
    """One discovered asset. `key` is unique within an integration; `fingerprint` changes iff content does."""

    key: str
    # database (the level above schemas) | schema | table | view | materialized_view | external_table | foreign_table
    # | column
    kind: str
    name: str
    parent_key: str | None = None
    fingerprint: str
    attributes: dict[str, Any] = Field(default_factory=dict)


UpsertChange = Literal["created", "updated"]


class AssetsChangedPayload(BaseModel):
    upserted: list[Asset] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    # What every upserted asset of this report is to the store: new, or changed. None: not said (reports of
    # connectors from before this field; readers then judge by the assets read model).
    change: UpsertChange | None = None


class LineageEdgePayload(BaseModel):
    """Data flows from one asset to another; either may belong to another integration (external lineage)."""

    from_integration_id: uuid.UUID
    from_key: str
    to_integration_id: uuid.UUID
    to_key: str


class LineageReportedPayload(BaseModel):
    """Lineage a sync asserts. The edges of all of a run's reports replace the integration's edges if it succeeds."""

    edges: list[LineageEdgePayload] = Field(default_factory=list)


MAX_RUN_WARNINGS = 100  # warnings one run keeps; the connector counts the rest in `dropped`


class WarningsReportedPayload(BaseModel):
    """Non-fatal findings of a run's source (skipped objects, missing privileges), as they come. A run keeps at most
    MAX_RUN_WARNINGS over all its reports; `dropped` counts the ones left out so far (the run's total)."""

    warnings: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=MAX_RUN_WARNINGS)
    dropped: int = Field(default=0, ge=0)


class FinishedPayload(BaseModel):
    """Payload of succeeded, failed and cancelled."""

    counts: AssetCountsPayload
    message: str | None = None
    # Ended by the reaper (its connector went silent, or none picked it up): what webhooks notify as run.reaped.
    reaped: bool = False


class HeartbeatPayload(BaseModel):
    connector_id: str


class StartRunPayload(BaseModel):
    source: str
    upload_id: uuid.UUID | None = None  # the stored upload to import (a reference: never the bytes)


class CancelRunPayload(BaseModel):
    requested_by: str | None = None


# ---- events ---------------------------------------------------------------------------------


class RunOwner(BaseModel):
    """Who may report for a run: the connector instance that claimed it, and which claim of the run."""

    model_config = ConfigDict(frozen=True)

    connector_id: str
    attempt: int = Field(ge=1)


class EventBase(BaseModel):
    """The envelope every message shares. `event_id` is globally unique: consumers deduplicate on it."""

    model_config = ConfigDict(frozen=True)

    envelope_version: int = ENVELOPE_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    integration_id: uuid.UUID
    integration_external_id: str
    run_id: uuid.UUID
    seq: int | None = None
    owner: RunOwner | None = None

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class RunRequested(EventBase):
    type: Literal["run.requested.v1"] = "run.requested.v1"
    payload: RequestedPayload


class RunCancelRequested(EventBase):
    type: Literal["run.cancel_requested.v1"] = "run.cancel_requested.v1"
    payload: CancelRequestedPayload = Field(default_factory=CancelRequestedPayload)


class RunStarted(EventBase):
    type: Literal["run.started.v1"] = "run.started.v1"
    payload: StartedPayload


class RunProgressed(EventBase):
    type: Literal["run.progressed.v1"] = "run.progressed.v1"
    payload: ProgressedPayload


class AssetsChanged(EventBase):
    type: Literal["run.assets_changed.v1"] = "run.assets_changed.v1"
    payload: AssetsChangedPayload


class LineageReported(EventBase):
    type: Literal["run.lineage_reported.v1"] = "run.lineage_reported.v1"
    payload: LineageReportedPayload


class WarningsReported(EventBase):
    type: Literal["run.warnings_reported.v1"] = "run.warnings_reported.v1"
    payload: WarningsReportedPayload


class RunSucceeded(EventBase):
    type: Literal["run.succeeded.v1"] = "run.succeeded.v1"
    payload: FinishedPayload


class RunFailed(EventBase):
    type: Literal["run.failed.v1"] = "run.failed.v1"
    payload: FinishedPayload


class RunCancelled(EventBase):
    type: Literal["run.cancelled.v1"] = "run.cancelled.v1"
    payload: FinishedPayload


class RunHeartbeat(EventBase):
    type: Literal["run.heartbeat.v1"] = "run.heartbeat.v1"
    payload: HeartbeatPayload


class StartRunCommand(EventBase):
    type: Literal["command.start_run.v1"] = "command.start_run.v1"
    payload: StartRunPayload


class CancelRunCommand(EventBase):
    type: Literal["command.cancel_run.v1"] = "command.cancel_run.v1"
    payload: CancelRunPayload = Field(default_factory=CancelRunPayload)


RunEnded = RunSucceeded | RunFailed | RunCancelled
# Facts of the run log, in the order of a run's life.
RunLogEvent = (
    RunRequested
    | RunCancelRequested
    | RunStarted
    | RunProgressed
    | AssetsChanged
    | LineageReported
    | WarningsReported
    | RunEnded
)
# What a connector may put on CONNECTOR_REPORTS.
ConnectorReport = (
    RunStarted | RunProgressed | AssetsChanged | LineageReported | WarningsReported | RunEnded | RunHeartbeat
)
Command = StartRunCommand | CancelRunCommand

_RUN_LOG_EVENT: TypeAdapter[RunLogEvent] = TypeAdapter(Annotated[RunLogEvent, Field(discriminator="type")])
_CONNECTOR_REPORT: TypeAdapter[ConnectorReport] = TypeAdapter(Annotated[ConnectorReport, Field(discriminator="type")])
_COMMAND: TypeAdapter[Command] = TypeAdapter(Annotated[Command, Field(discriminator="type")])


def parse_report(raw: bytes) -> ConnectorReport:
    """Parse one connector report; raises pydantic.ValidationError for anything off-contract."""
    return _CONNECTOR_REPORT.validate_json(raw)


# ---- bulk reports: validated once, stored as received ----------------------------------------
# Asset and lineage batches are most of what crosses the system (a 20,000-table crawl: 430,000 assets). Parsing each
# into pydantic models only to serialise the same payload again for the run log took three quarters of the
# projector's time. Their envelope is still validated by pydantic (the contract); their payload is validated by the
# msgspec shapes below (the same fields, types and defaults as the pydantic payload models: tests/unit/test_bulk_reports
# holds them equal) without building an object per asset, and stored as the bytes that arrived.


class _AssetShape(msgspec.Struct):
    key: str
    kind: str
    name: str
    fingerprint: str
    parent_key: str | None = None
    attributes: msgspec.Raw = msgspec.Raw(b"{}")  # any JSON object: checked by its first byte, never built


class _AssetsChangedShape(msgspec.Struct):
    upserted: list[_AssetShape] = []
    deleted: list[str] = []
    change: UpsertChange | None = None


class _EdgeShape(msgspec.Struct):
    from_integration_id: uuid.UUID
    from_key: str
    to_integration_id: uuid.UUID
    to_key: str


class _LineageShape(msgspec.Struct):
    edges: list[_EdgeShape] = []


_BULK_SHAPES: dict[str, msgspec.json.Decoder[Any]] = {
    AssetsChanged.model_fields["type"].default: msgspec.json.Decoder(_AssetsChangedShape),
    LineageReported.model_fields["type"].default: msgspec.json.Decoder(_LineageShape),
}
_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])


@dataclass(frozen=True)
class LoggedReport:
    """A connector report as the run log stores it: the event and its payload's JSON.

    For an asset or lineage batch the event's `payload` is left empty (its content is not needed to decide anything,
    only to be stored): `payload_json` is the payload as it arrived, validated."""

    event: ConnectorReport
    payload_json: bytes


def parse_report_for_log(raw: bytes) -> LoggedReport:
    """Parse a connector report for the run log; raises pydantic.ValidationError for anything off-contract."""
    try:
        fields = _TOP_LEVEL.decode(raw)
        kind = msgspec.json.decode(fields["type"]) if "type" in fields else None
    except (msgspec.DecodeError, TypeError):
        kind = None
    shape = _BULK_SHAPES.get(kind) if isinstance(kind, str) and "payload" in fields else None
    if shape is None:
        event = parse_report(raw)  # small: parsed and re-serialised whole
        return LoggedReport(event, event.payload.model_dump_json().encode())
    payload = bytes(fields.pop("payload"))
    envelope = {name: msgspec.json.decode(value) for name, value in fields.items()} | {"payload": {}}
    event = _CONNECTOR_REPORT.validate_python(envelope)
    try:
        _check_attributes(shape.decode(payload))
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise _payload_error(event, str(error)) from None
    return LoggedReport(event, payload)


def _check_attributes(payload: Any) -> None:
    for number, asset in enumerate(getattr(payload, "upserted", ())):
        if bytes(memoryview(asset.attributes)[:1]) != b"{":
            raise msgspec.ValidationError(f"Expected `object` - at `$.upserted[{number}].attributes`")


def _payload_error(event: ConnectorReport, message: str) -> Exception:
    """The pydantic error of a payload the msgspec shape refused, so that both paths fail alike."""
    from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

    detail = InitErrorDetails(type=PydanticCustomError("invalid_payload", message), loc=("payload",), input=None)
    return ValidationError.from_exception_data(type(event).__name__, [detail])


def encode_bulk(envelope: AssetsChanged | LineageReported, payload: dict[str, Any]) -> bytes:
    """An asset or lineage report's bytes: the envelope by pydantic, the (plain dict) payload by orjson, which is an
    order of magnitude faster on thousands of assets. The result parses with parse_report like any report."""
    head = envelope.model_dump_json(exclude={"payload"}, warnings=False).encode()
    return head[:-1] + b',"payload":' + orjson.dumps(payload, default=str) + b"}"


class _Typed(msgspec.Struct):
    type: str


_TYPE_ONLY = msgspec.json.Decoder(_Typed)


def event_type(raw: bytes) -> str | None:
    """The `type` of a message, read without building the rest of it (None: not an event): a consumer interested in
    a few types skips the asset batches (hundreds of KB each) at a glance."""
    try:
        return _TYPE_ONLY.decode(raw).type
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def parse_command(raw: bytes) -> Command:
    return _COMMAND.validate_json(raw)


def run_log_event(data: dict[str, Any]) -> RunLogEvent:
    """A run log event from its stored fields (rebuild, relay contract checks)."""
    return _RUN_LOG_EVENT.validate_python(data)


def parse_run_log_event(raw: bytes) -> RunLogEvent:
    """A run log event as published on RUN_EVENTS."""
    return _RUN_LOG_EVENT.validate_json(raw)


class ConnectionTestCommand(BaseModel):
    """Ask any connector whether a source is reachable with a configuration (saved or not).

    `credentials` is a Fernet token (CREDENTIALS_KEY), as credentials are at rest: never plain on a topic."""

    model_config = ConfigDict(frozen=True)

    envelope_version: int = ENVELOPE_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: Literal["command.test_connection.v1"] = "command.test_connection.v1"
    occurred_at: datetime = Field(default_factory=utcnow)
    test_id: uuid.UUID
    source: str
    configuration: dict[str, Any]
    credentials: str | None = None
    timeout_s: float = Field(gt=0, le=300)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


def parse_test_command(raw: bytes) -> ConnectionTestCommand:
    return ConnectionTestCommand.model_validate_json(raw)
