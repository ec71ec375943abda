"""The AsyncAPI 3.0 document of our Kafka topics, generated from the event models at runtime (/asyncapi.yaml).

Payload schemas come from `shared.events` through pydantic, and each topic lists the members of the union its
consumers parse, so a new event type or a changed model shows up here without anyone editing this module.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import events, topics

KAFKA_BINDING = "0.5.0"
SCHEMAS = "#/components/schemas/"
# Every message is one JSON document; no service sets or reads Kafka headers.
NO_HEADERS: dict[str, Any] = {
    "type": "object",
    "maxProperties": 0,
    "description": "None: everything a consumer needs is in the JSON value.",
}


@dataclass(frozen=True)
class Channel:
    """What one topic carries and who writes and reads it."""

    channel_id: str
    topic: str
    description: str
    messages: tuple[type[BaseModel], ...]
    key_field: str  # the envelope field the Kafka key equals (so one integration's messages stay in order)
    producer: str
    consumers: tuple[tuple[str, str | None], ...] = ()  # (service, consumer group; None: every instance reads all)
    # Constraints this topic adds to the models, e.g. `seq` is always set on accepted events.
    refinement: dict[str, Any] = field(default_factory=dict)


def members(union: Any) -> tuple[type[BaseModel], ...]:
    """The event classes of a union such as `RunLogEvent` (a new member is picked up by itself)."""
    return typing.get_args(union) if isinstance(union, types.UnionType) else (union,)


CHANNELS = (
    Channel(
        "runRequests", topics.RUN_REQUESTS,
        "Start commands for the connector group, written through the outbox when a run is queued. "
        "Any connector instance of group `connector` runs it.",
        members(events.StartRunCommand), "integration_id", "relay (the API's and the scheduler's outbox rows)",
        (("connector", "connector"),),
    ),
    Channel(
        "runCancellations", topics.RUN_CANCELLATIONS,
        "Cancel commands. Every connector instance reads all of them (a run lives on one instance).",
        members(events.CancelRunCommand), "integration_id", "relay (the API's outbox rows)", (("connector", None),),
    ),
    Channel(
        "connectorReports", topics.CONNECTOR_REPORTS,
        "What connectors observe while executing runs. The projector applies a report only if `owner` is the "
        "run's current claim (fencing); anything off this contract goes to its dead letters.",
        members(events.ConnectorReport), "integration_id", "connector",
        (("projector", "projector"),),
        {"required": ["owner"], "properties": {"owner": {"$ref": SCHEMAS + "RunOwner"}}},
    ),
    Channel(
        "runEvents", topics.RUN_EVENTS,
        "The public run log: every event the run log accepted, with its per-run `seq`. Delivery is at least "
        "once: deduplicate on `event_id`, order one run's events by `seq`. Fields added later default when "
        "absent. `owner` is never published.",
        members(events.RunLogEvent), "integration_id",
        "relay (the events the run log accepted from the API, the projector and the reaper)",
        (("notifier", "notifier"),),  # webhook notifications; any other system may read it too
        refinement={"required": ["seq"], "properties": {"seq": {"type": "integer", "minimum": 1}}},
    ),
    Channel(
        "connectionTests", topics.CONNECTION_TESTS,
        "'Can you reach this source?' Any connector of group `connector-tests` answers, through PostgreSQL. "
        "Credentials are a Fernet token, never plain. Kept an hour: a test is useless after its timeout.",
        (events.ConnectionTestCommand,), "test_id", "relay (the API's outbox rows)",
        (("connector", "connector-tests"),),
    ),
)  # fmt: skip


def _model_schemas() -> dict[str, Any]:
    """JSON Schemas of every model on any topic, cross-referenced under components/schemas.

    Validation mode: what our consumers accept, so a field with a default may be absent (older producers)."""
    models = sorted({m for channel in CHANNELS for m in channel.messages}, key=lambda m: m.__name__)
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=SCHEMAS + "{model}")
    defs: dict[str, Any] = schemas["$defs"]
    return dict(sorted(defs.items()))


def _message(channel: Channel, model: type[BaseModel]) -> dict[str, Any]:
    event_type = model.model_fields["type"].default
    payload: dict[str, Any] = {"$ref": SCHEMAS + model.__name__}
    if channel.refinement:
        payload = {"allOf": [payload, channel.refinement]}
    about = model.__doc__ if "__doc__" in vars(model) and model.__doc__ else f"A `{event_type}` event."
    return {
        "name": event_type,
        "title": model.__name__,
        "summary": about.strip().splitlines()[0],
        "contentType": "application/json",
        "headers": NO_HEADERS,
        "payload": payload,
        "correlationId": {"location": "$message.payload#/" + ("run_id" if "run_id" in model.model_fields
                                                              else channel.key_field)},
        "bindings": {"kafka": {"key": _key(channel), "bindingVersion": KAFKA_BINDING}},
    }  # fmt: skip


def _key(channel: Channel) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "uuid",
        "description": f"The message's `{channel.key_field}` as text: one key's messages stay in order.",
    }


def _channel(channel: Channel) -> dict[str, Any]:
    return {
        "address": channel.topic,
        "title": channel.topic,
        "description": channel.description,
        "messages": {m.__name__: _message(channel, m) for m in channel.messages},
        "bindings": {"kafka": _topic_binding(channel.topic)},
    }


def _topic_binding(topic: str) -> dict[str, Any]:
    binding: dict[str, Any] = {"topic": topic, "bindingVersion": KAFKA_BINDING}
    configs = topics.TOPIC_CONFIGS.get(topic, {})
    if "retention.ms" in configs:
        binding["topicConfiguration"] = {"retention.ms": int(configs["retention.ms"])}
    return binding


def _operations(channel: Channel) -> dict[str, Any]:
    ref = {"$ref": f"#/channels/{channel.channel_id}"}
    messages = [{"$ref": f"#/channels/{channel.channel_id}/messages/{m.__name__}"} for m in channel.messages]
    operations: dict[str, Any] = {
        f"send_{channel.channel_id}": {
            "action": "send", "channel": ref, "messages": messages, "summary": f"Written by the {channel.producer}.",
        },
    }  # fmt: skip
    for service, group in channel.consumers:
        reader = f"the {service} (group `{group}`)" if group else f"every {service} instance"
        receive: dict[str, Any] = {"action": "receive", "channel": ref, "messages": messages,
                                   "summary": f"Read by {reader}."}  # fmt: skip
        if group:
            receive["bindings"] = {"kafka": {"groupId": {"type": "string", "enum": [group]},
                                             "bindingVersion": KAFKA_BINDING}}  # fmt: skip
        operations[f"receive_{channel.channel_id}_{group or service}".replace("-", "_")] = receive
    return operations


SERVER = {
    "host": "{bootstrapServers}",
    "protocol": "kafka",
    "description": (
        "The cluster KAFKA_BOOTSTRAP_SERVERS names, reached as KAFKA_SECURITY_PROTOCOL says (PLAINTEXT, SSL, "
        "SASL_PLAINTEXT or SASL_SSL with PLAIN or SCRAM, optionally a client certificate). Producers are "
        "idempotent with acks=all; batches are compressed as KAFKA_COMPRESSION says (none by default; gzip, "
        "snappy, lz4 or zstd: consumers decompress transparently). "
        "Messages are at most KAFKA_MAX_MESSAGE_BYTES (8 MiB by default), the topics' max.message.bytes."
    ),
    "variables": {"bootstrapServers": {"default": "127.0.0.1:9092", "description": "KAFKA_BOOTSTRAP_SERVERS"}},
    "security": [{"$ref": f"#/components/securitySchemes/{name}"} for name in ("plain", "scram256", "scram512", "tls")],
}
SECURITY_SCHEMES = {
    "plain": {"type": "plain", "description": "KAFKA_SASL_MECHANISM=PLAIN"},
    "scram256": {"type": "scramSha256", "description": "KAFKA_SASL_MECHANISM=SCRAM-SHA-256"},
    "scram512": {"type": "scramSha512", "description": "KAFKA_SASL_MECHANISM=SCRAM-SHA-512"},
    "tls": {"type": "X509", "description": "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE (mutual TLS)"},
}


@functools.cache
def document() -> dict[str, Any]:
    """The whole document (built once per process: the models do not change while it runs)."""
    operations: dict[str, Any] = {}
    for channel in CHANNELS:
        operations |= _operations(channel)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Ingestion control plane: Kafka topics",
            "version": f"{events.ENVELOPE_VERSION}.0.0",
            "description": (
                "Every message on every topic is one event: a JSON envelope (`envelope_version`, `event_id`, "
                "`type`, `occurred_at`, ids, `payload`) keyed by the id in its key binding. `type` names the "
                "message and is versioned (`run.started.v1`); consumers parse the value into the class `type` "
                "names. Generated from the event models (shared/events.py) of the running version."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": SERVER},
        "channels": {channel.channel_id: _channel(channel) for channel in CHANNELS},
        "operations": operations,
        "components": {"schemas": _model_schemas(), "securitySchemes": SECURITY_SCHEMES},
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # the same headers schema on every message is written out, not as YAML anchors


@functools.cache
def document_yaml() -> str:
    return yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


async def serve(_: web.Request) -> web.Response:
    return web.Response(text=document_yaml(), content_type="application/yaml")
