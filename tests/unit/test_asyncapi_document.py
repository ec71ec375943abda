"""The AsyncAPI document of the Kafka topics: valid AsyncAPI 3.0, complete, and as strict as each topic is."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import yaml

from services.api.asyncapi import document_yaml
from shared import topics
from shared.events import (
    AssetCountsPayload,
    FinishedPayload,
    HeartbeatPayload,
    RunHeartbeat,
    RunOwner,
    RunSucceeded,
)
from tests.contracts.asyncapi_contract import Contract, official_errors

INTEGRATION = uuid.uuid4()
KEY = str(INTEGRATION).encode()


def served() -> dict[str, Any]:
    return yaml.safe_load(document_yaml())


def succeeded(**fields: Any) -> RunSucceeded:
    return RunSucceeded(integration_id=INTEGRATION, integration_external_id="shop", run_id=uuid.uuid4(),
                        payload=FinishedPayload(counts=AssetCountsPayload(assets_processed=2)), **fields)  # fmt: skip


def test_the_served_document_is_valid_asyncapi_3_0():
    assert official_errors(served()) == []


def test_the_official_schema_refuses_what_asyncapi_3_0_does_not_allow():
    broken = copy.deepcopy(served())
    broken["operations"]["send_runEvents"]["action"] = "publish"  # AsyncAPI 2's word; 3.0 says send/receive
    assert official_errors(broken) != []


def test_every_topic_is_a_channel():
    assert sorted(channel["address"] for channel in served()["channels"].values()) == sorted(topics.ALL_TOPICS)


def test_every_reference_in_the_document_resolves():
    document = served()
    unresolved = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                target: Any = document
                for part in node["$ref"].removeprefix("#/").split("/"):
                    target = target.get(part) if isinstance(target, dict) else None
                if target is None:
                    unresolved.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert unresolved == []


def test_an_accepted_event_on_the_public_topic_carries_its_seq():
    contract = Contract(served())
    assert contract.errors(topics.RUN_EVENTS, KEY, [], succeeded(seq=3).to_bytes()) == []
    [problem] = contract.errors(topics.RUN_EVENTS, KEY, [], succeeded().to_bytes())
    assert "seq" in problem


def test_a_connector_report_carries_its_owner():
    contract = Contract(served())
    owner = RunOwner(connector_id="c-1", attempt=1)
    assert contract.errors(topics.CONNECTOR_REPORTS, KEY, [], succeeded(owner=owner).to_bytes()) == []
    assert contract.errors(topics.CONNECTOR_REPORTS, KEY, [], succeeded().to_bytes()) != []


def test_a_heartbeat_is_not_a_public_run_event():
    beat = RunHeartbeat(integration_id=INTEGRATION, integration_external_id="shop", run_id=uuid.uuid4(), seq=1,
                        payload=HeartbeatPayload(connector_id="c-1"))  # fmt: skip
    assert Contract(served()).errors(topics.RUN_EVENTS, KEY, [], beat.to_bytes()) == [
        f"{topics.RUN_EVENTS}: type 'run.heartbeat.v1' is not a message of channel runEvents"
    ]


def test_keys_and_headers_are_part_of_the_contract():
    contract = Contract(served())
    value = succeeded(seq=1).to_bytes()
    assert contract.errors(topics.RUN_EVENTS, b"shop", [], value) != []  # the key is the integration's id
    assert contract.errors(topics.RUN_EVENTS, KEY, [("trace", b"1")], value) != []  # no headers are documented


def test_a_field_no_model_declares_breaks_the_contract():
    """E.g. a renamed field that a producer rendering the envelope by hand (the relay's SQL) still writes."""
    contract = Contract(served())
    envelope = succeeded(seq=1).model_dump(mode="json")
    renamed = envelope | {"integration_key": envelope["integration_external_id"]}
    payload = envelope | {"payload": envelope["payload"] | {"assets_seen": 2}}
    for changed in (renamed, payload):
        assert contract.errors(topics.RUN_EVENTS, KEY, [], json.dumps(changed).encode()) != []
