"""Parsing of query parameters and JSON bodies into typed values, with errors that name the field."""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from services.api.problems import BadRequest

M = TypeVar("M", bound=BaseModel)


def int_param(request: web.Request, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer, got '{raw}'", field=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadRequest(f"'{name}' must be {bounds}, got {value}", field=name)
    return value


def bool_param(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise BadRequest(f"'{name}' must be 'true' or 'false', got '{raw}'", field=name)


def choice_param(request: web.Request, name: str, allowed: list[str]) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise BadRequest(f"'{name}' must be one of {', '.join(allowed)}; got '{raw}'", field=name)
    return raw


def uuid_path(request: web.Request, name: str) -> uuid.UUID:
    raw = request.match_info[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be a UUID, got '{raw}'", field=name) from None


async def json_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data: Any = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(f"The request body is not valid JSON: {error}", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", field="body")
    return model.model_validate(data)  # a ValidationError becomes a 422 naming every field
