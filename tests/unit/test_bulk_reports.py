"""Asset and lineage batches take a fast path (orjson out, msgspec in, stored as received): it must accept and
refuse exactly what the pydantic contract does, and store exactly the payload that was sent."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, ValidationError

from shared import events
from shared.events import (
    Asset,
    AssetsChanged,
    AssetsChangedPayload,
    LineageEdgePayload,
    LineageReported,
    LineageReportedPayload,
    RunOwner,
    encode_bulk,
    parse_report,
    parse_report_for_log,
)

ABOUT: dict[str, Any] = {
    "integration_id": uuid.uuid4(),
    "integration_external_id": "shop",
    "run_id": uuid.uuid4(),
    "owner": RunOwner(connector_id="c-1", attempt=1),
}
ASSET = {"key": "db/s/t", "kind": "table", "name": "t", "parent_key": "db/s", "fingerprint": "f1",
         "attributes": {"comment": None, "columns": [1, 2], "nested": {"a": "b"}}}  # fmt: skip
EDGE = {"from_integration_id": str(uuid.uuid4()), "from_key": "a", "to_integration_id": str(uuid.uuid4()),
        "to_key": "b"}  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "model"),
    [
        (events._AssetShape, Asset),
        (events._AssetsChangedShape, AssetsChangedPayload),
        (events._EdgeShape, LineageEdgePayload),
        (events._LineageShape, LineageReportedPayload),
    ],
)
def test_each_shape_has_the_fields_of_its_model_required_alike(shape: type[msgspec.Struct], model: type[BaseModel]):
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    assert set(shape.__struct_fields__) == set(model.model_fields)
    assert set(shape.__struct_fields__[: len(shape.__struct_fields__) - len(shape.__struct_defaults__)]) == required


def report(envelope: AssetsChanged | LineageReported, payload: Any) -> bytes:
    """Any payload, even off-contract, in a valid envelope."""
    head = envelope.model_dump_json(exclude={"payload"}).encode()
    return head[:-1] + b',"payload":' + json.dumps(payload).encode() + b"}"


def assets_report(payload: Any) -> bytes:
    return report(AssetsChanged.model_construct(**ABOUT, payload=AssetsChangedPayload()), payload)


def lineage_report(payload: Any) -> bytes:
    return report(LineageReported.model_construct(**ABOUT, payload=LineageReportedPayload()), payload)


def without(d: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != name}


CASES = [
    assets_report({"upserted": [ASSET], "deleted": [], "change": "created"}),
    assets_report({"upserted": [ASSET | {"unknown": 1}]}),
    assets_report({}),
    assets_report({"deleted": ["a", "b"]}),
    assets_report({"upserted": [without(ASSET, "parent_key")]}),
    assets_report({"upserted": [without(ASSET, "attributes")]}),
    assets_report({"upserted": [ASSET | {"parent_key": None}]}),
    assets_report({"upserted": [without(ASSET, "key")]}),
    assets_report({"upserted": [without(ASSET, "fingerprint")]}),
    assets_report({"upserted": [ASSET | {"name": 5}]}),
    assets_report({"upserted": [ASSET | {"kind": None}]}),
    assets_report({"upserted": [ASSET | {"attributes": [1]}]}),
    assets_report({"upserted": [ASSET | {"attributes": "x"}]}),
    assets_report({"upserted": [ASSET | {"attributes": None}]}),
    assets_report({"upserted": [ASSET], "change": "moved"}),
    assets_report({"upserted": [ASSET], "change": None}),
    assets_report({"deleted": [1]}),
    assets_report({"deleted": None}),
    assets_report({"upserted": {"key": "x"}}),
    assets_report([]),
    assets_report(None),
    lineage_report({"edges": [EDGE]}),
    lineage_report({"edges": []}),
    lineage_report({}),
    lineage_report({"edges": [EDGE | {"from_integration_id": "not-a-uuid"}]}),
    lineage_report({"edges": [without(EDGE, "to_key")]}),
    lineage_report({"edges": [EDGE | {"to_key": 3}]}),
    lineage_report({"edges": None}),
    assets_report({"upserted": [ASSET]}).replace(b'"attempt":1', b'"attempt":0'),  # the envelope: pydantic's
    assets_report({"upserted": [ASSET]}).replace(b'"run_id"', b'"no_run_id"'),
    assets_report({"upserted": [ASSET]}).replace(b',"payload":', b',"nothing":'),
]


@pytest.mark.parametrize("raw", CASES)
def test_the_fast_path_accepts_and_refuses_what_the_contract_does(raw: bytes):
    try:
        expected = parse_report(raw)
    except ValidationError:
        with pytest.raises(ValidationError):
            parse_report_for_log(raw)
        return
    logged = parse_report_for_log(raw)
    assert logged.event.model_dump(exclude={"payload"}) == expected.model_dump(exclude={"payload"})
    # What the log stores reads back as the same payload.
    assert type(expected.payload).model_validate_json(logged.payload_json) == expected.payload


def test_a_batch_is_stored_as_it_was_sent_unknown_fields_included():
    sent = {"upserted": [ASSET | {"since_v2": True}], "deleted": [], "change": "updated"}
    logged = parse_report_for_log(assets_report(sent))
    assert json.loads(logged.payload_json) == sent


def test_encode_bulk_writes_a_report_the_contract_reads():
    envelope = AssetsChanged.model_construct(**ABOUT, payload=AssetsChangedPayload())
    encoded = encode_bulk(envelope, {"upserted": [ASSET], "deleted": [], "change": "created"})
    parsed = parse_report(encoded)
    assert isinstance(parsed, AssetsChanged)
    assert parsed.event_id == envelope.event_id and parsed.owner == ABOUT["owner"]
    assert parsed.payload == AssetsChangedPayload(upserted=[Asset(**ASSET)], change="created")


def test_an_edge_with_uuid_objects_is_encoded_as_the_contract_expects():
    envelope = LineageReported.model_construct(**ABOUT, payload=LineageReportedPayload())
    edge = {"from_integration_id": uuid.uuid4(), "from_key": "a", "to_integration_id": uuid.uuid4(), "to_key": "b"}
    parsed = parse_report(encode_bulk(envelope, {"edges": [edge]}))
    assert isinstance(parsed, LineageReported) and parsed.payload.edges == [LineageEdgePayload(**edge)]


def test_a_refused_batch_says_where():
    with pytest.raises(ValidationError) as refused:
        parse_report_for_log(assets_report({"upserted": [ASSET, ASSET | {"attributes": [1]}]}))
    assert "upserted[1].attributes" in str(refused.value)


def test_the_type_of_a_message_is_read_without_the_rest():
    assert events.event_type(assets_report({"upserted": [ASSET]})) == "run.assets_changed.v1"
    assert events.event_type(assets_report({"upserted": "off-contract, but not looked at"})) == "run.assets_changed.v1"
    assert events.event_type(b"[1]") is None and events.event_type(b"not json") is None
    assert events.event_type(b'{"payload": {}}') is None
