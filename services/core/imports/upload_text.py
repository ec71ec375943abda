"""The text of an uploaded file, shared by the CSV and JSONL parsers: decoding with line numbers, storable text,
values shown in errors without echoing huge input, asset keys PostgreSQL can index, and UTC timestamps."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from services.core.imports.model import InvalidUpload

BOM = "\ufeff"
SHOWN_CHARS = 60  # an error quotes at most this much of a value
# The assets primary key is a btree over (integration_id, asset_key): an entry over ~2,700 bytes cannot be stored.
MAX_KEY_BYTES = 2000


def shown(value: object) -> str:
    """A value as an error quotes it: a string in quotes, a JSON value as JSON spells it; truncated."""
    if isinstance(value, str):
        return repr(_truncated(value))
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return _truncated(repr(value))


def _truncated(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def text_problem(value: str) -> str | None:
    """Why PostgreSQL could not store `value` as text (a NUL, an unpaired surrogate), or None when it can."""
    if "\x00" in value:
        return "NUL characters (\\u0000) are not allowed"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "unpaired UTF-16 surrogates (\\ud800-\\udfff) are not valid text"
    return None


def decoded(part: str, raw: bytes) -> str:
    """The part as text: UTF-8 with an optional BOM, without NUL characters; a problem names the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(part, raw.count(b"\n", 0, error.start) + 1, "the file is not valid UTF-8") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise invalid(part, text.count("\n", 0, nul) + 1, "NUL characters are not allowed")
    return text.removeprefix(BOM)


def invalid(part: str, line: int | None, problem: str) -> InvalidUpload:
    """The upload's refusal: "<part> line <n>: <problem>." (no line: about the whole part)."""
    where = part if line is None else f"{part} line {line}"
    return InvalidUpload(f"{where}: {problem}.", field=part)


def checked_key(key: str, part: str, line: int) -> str:
    """`key` if the assets index can hold it."""
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8")) > MAX_KEY_BYTES:  # the encode only when it may fail
        raise invalid(part, line, f"the resource's identity is longer than {MAX_KEY_BYTES} bytes")
    return key


def utc_iso(moment: datetime) -> str:
    """ISO-8601 in UTC; a time without an offset is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pauses CPython's cyclic garbage collector while a parse builds its result.

    A large upload builds hundreds of thousands of lasting containers (dicts, records, tuples) and no cycles; the
    generational collector would traverse them all several times over, a third of the parse time. Reference counting
    still frees everything else; a collector that was already off stays off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
