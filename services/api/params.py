"""Parsing of query parameters, path segments and JSON bodies into typed values, with errors that name the field.

Every text that enters the API passes `text_problem` here, once, at the edge: PostgreSQL cannot store
NUL characters (nor unpaired surrogates) in text or jsonb, so such input is refused with a 400 naming
the field instead of failing deep inside a query.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from services.api.problems import BadRequest, Handler
from services.core.imports.upload_text import text_problem  # one rule for the API's and the uploads' text

M = TypeVar("M", bound=BaseModel)

# Page numbers stay small enough that page * limit (<= 200) never overflows PostgreSQL's bigint OFFSET.
MAX_PAGE = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: int() would also take '1_0', ' 7' or '٣'


def checked_text(value: str, field: str, where: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise BadRequest(f"Invalid {where} '{field}': {problem}.", field=field)
    return value


def text_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    return checked_text(raw, name, "query parameter")


def int_param(request: web.Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = text_param(request, name)
    if raw is None:
        return default
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(f"'{name}' must be an integer between {minimum} and {maximum}, got '{shown}'", field=name)
    # Compare lengths first: converting thousands of digits is slow, and Python refuses past 4,300.
    if len(raw.lstrip("-").lstrip("0")) > len(str(maximum)) or not minimum <= int(raw) <= maximum:
        raise BadRequest(f"'{name}' must be between {minimum} and {maximum}, got {shown}", field=name)
    return int(raw)


def bool_param(request: web.Request, name: str) -> bool | None:
    raw = text_param(request, name)
    if raw is None:
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise BadRequest(f"'{name}' must be 'true' or 'false', got '{raw}'", field=name)


def choice_param(request: web.Request, name: str, allowed: list[str]) -> str | None:
    raw = text_param(request, name)
    if raw is None:
        return None
    if raw not in allowed:
        raise BadRequest(f"'{name}' must be one of {', '.join(allowed)}; got '{raw}'", field=name)
    return raw


def uuid_path(request: web.Request, name: str, pattern: re.Pattern[str] | None = None) -> uuid.UUID:
    """A UUID path parameter; with `pattern`, its text must also match that (a dialect's stricter UUID form)."""
    raw = request.match_info[name]
    try:
        value = uuid.UUID(raw)
    except ValueError:
        value = None
    if value is None or (pattern is not None and not pattern.fullmatch(raw)):
        raise BadRequest(f"'{name}' must be a UUID, got '{raw[:60]}'", field=name) from None
    return value


@web.middleware
async def path_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every path segment of every route is text for a query: one check here covers all of them."""
    for name, value in request.match_info.items():
        checked_text(value, name, "path parameter")
    return await handler(request)


async def json_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data: Any = json.loads(raw, parse_constant=_no_constant) if raw else None
    except ValueError as error:  # bad syntax or encoding, NaN/Infinity, integers beyond Python's digit limit
        raise BadRequest(f"The request body is not valid JSON: {error}", field="body") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply.", field="body") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", field="body")
    invalid = list(_invalid_texts(data))
    if invalid:
        detail = "; ".join(f"{field}: {problem}" for field, problem in invalid)
        raise BadRequest(f"Invalid text in the request body: {detail}.", errors=invalid)
    return model.model_validate(data)  # a ValidationError becomes a 422 naming every field


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _invalid_texts(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field path, problem) of every string, keys included, that cannot be stored; iterative, any depth."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                yield path or "body", problem
        elif isinstance(value, dict):
            children = [(f"{path}.{key}" if path else key, key, item) for key, item in value.items()]
            for child, key, item in reversed(children):
                pending.append((child, item))
                pending.append((child, key))  # popped first: a bad key is reported before its value
        elif isinstance(value, list):
            pending.extend((f"{path}.{i}", item) for i, item in reversed(list(enumerate(value))))
