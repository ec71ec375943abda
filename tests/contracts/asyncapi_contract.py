"""The test side of the AsyncAPI contract: the document against the official schema, messages against the document."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

OFFICIAL_SCHEMA = Path(__file__).with_name("asyncapi-3.0.0.json")
DOCUMENT_URI = "urn:ingestion-control-plane:asyncapi"


def _describe(errors: Sequence[ValidationError]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors]


def official_errors(document: dict[str, Any]) -> list[str]:
    """Why `document` is not a valid AsyncAPI 3.0 document (empty: it is)."""
    validator = Draft7Validator(json.loads(OFFICIAL_SCHEMA.read_text()))
    return _describe(list(validator.iter_errors(document)))


def closed(document: dict[str, Any]) -> dict[str, Any]:
    """A copy whose model schemas refuse properties they do not declare.

    The document leaves objects open (consumers ignore fields they do not know), but a message that carries a
    field the models lack means a model lost or renamed it while a producer (e.g. the relay, which renders the
    public envelope in SQL) still writes the old shape: the contract test must see that."""
    document = copy.deepcopy(document)
    _close(document["components"]["schemas"])
    return document


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


class Contract:
    """Checks one Kafka message (topic, key, headers, value) against the channel of its topic."""

    def __init__(self, document: dict[str, Any]) -> None:
        strict = closed(document)
        resource = Resource.from_contents(strict, default_specification=DRAFT7)
        self._registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        self.channels: dict[str, tuple[str, dict[str, Any]]] = {
            channel["address"]: (channel_id, channel) for channel_id, channel in strict["channels"].items()
        }

    def errors(self, topic: str, key: bytes | None, headers: Sequence[tuple[str, bytes]], value: bytes) -> list[str]:
        """Why this message breaks the document (empty: it matches its channel's message of its `type`)."""
        if topic not in self.channels:
            return [f"{topic}: no channel has this address"]
        channel_id, channel = self.channels[topic]
        try:
            data = json.loads(value)
        except ValueError as error:
            return [f"{topic}: the value is not JSON ({error})"]
        name = data.get("type") if isinstance(data, dict) else None
        found = [message_id for message_id, m in channel["messages"].items() if m["name"] == name]
        if not found:
            return [f"{topic}: type {name!r} is not a message of channel {channel_id}"]
        pointer = f"#/channels/{channel_id}/messages/{found[0]}"
        problems = self._check(f"{pointer}/payload", data)
        problems += self._check(f"{pointer}/bindings/kafka/key", None if key is None else key.decode())
        problems += self._check(f"{pointer}/headers", {k: v.decode(errors="replace") for k, v in headers})
        return [f"{topic} {name}: {problem}" for problem in problems]

    def _check(self, pointer: str, instance: Any) -> list[str]:
        validator = Draft7Validator(
            {"$ref": DOCUMENT_URI + pointer}, registry=self._registry, format_checker=FormatChecker()
        )
        return _describe(list(validator.iter_errors(instance)))
