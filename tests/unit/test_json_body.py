"""JSON bodies: strict JSON, and every string (keys, nested values) storable as PostgreSQL text."""

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from services.api.params import BadRequest, json_body


class Body(BaseModel):
    model_config = ConfigDict(extra="allow")


class FakeRequest:
    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    async def read(self) -> bytes:
        return self._raw


async def parse(raw: bytes) -> dict[str, Any]:
    return (await json_body(FakeRequest(raw), Body)).model_dump()  # type: ignore[arg-type]


async def refused(raw: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as error:
        await parse(raw)
    return error.value


async def test_every_string_that_postgresql_cannot_store_is_named_with_its_path():
    body = {"name": "a\x00", "configuration": {"schemas": ["ok", "\ud800x"], "bad\x00key": 1}, "fine": "é"}
    error = await refused(json.dumps(body).encode())
    assert [field for field, _ in error.errors] == ["name", "configuration.schemas.1", "configuration.bad\x00key"]
    assert "NUL" in error.errors[0][1] and "surrogate" in error.errors[1][1]


async def test_storable_text_passes_through_unchanged():
    body = {"name": "Ünïcode ☃ \U0001f600", "nested": [[{"deep": "tab\tand newline\n"}]]}
    assert await parse(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"port": NaN}', "not valid JSON"),
        (b'{"port": -Infinity}', "not valid JSON"),
        (b'{"port": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
    ],
)
async def test_malformed_bodies_are_a_400_not_a_crash(raw, says):
    error = await refused(raw)
    assert says in error.detail and error.errors[0][0] == "body"


async def test_nesting_just_under_the_parser_limit_is_walked_without_recursion():
    depth = 900
    raw = b'{"a": ' + b"[" * depth + b'"\\u0000"' + b"]" * depth + b"}"
    error = await refused(raw)
    assert error.errors[0][0] == "a" + ".0" * depth
