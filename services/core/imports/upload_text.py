"""The text of an upload, shared by every format (CSV, JSONL, dbt artifacts): decoding with line numbers, the one
rule for storable text, values shown in errors without echoing huge input, the one key rule (`resource_key`), keys
and names PostgreSQL can index, and UTC timestamps."""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from services.core.imports.model import InvalidUpload
from services.core.objects import escape

BOM = "\ufeff"
SHOWN_CHARS = 60  # an error quotes at most this much of a value
_NUL = "NUL characters (\\u0000) are not allowed"
# A btree index row holds at most 2,704 bytes, and PostgreSQL refuses a row whose index entry is longer when the
# import applies it (too late: every retry of the stored upload fails alike). The assets primary key is
# (integration_id, asset_key); names are indexed alone, lower-cased, and after the parent's key
# (integration_id, parent_key, name, object_id): a name and its parent's key share one row, with ~50 bytes of
# headers and ids. Names are also capped in characters: no real title is longer.
MAX_KEY_BYTES = 2000
MAX_NAME_CHARS = 1000
MAX_INDEXED_BYTES = 2600  # a name and its parent's key together, in UTF-8


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
        return _NUL
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "unpaired UTF-16 surrogates (\\ud800-\\udfff) are not valid text"
    return None


def text_problem_in(item: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first key or string in a JSON object that `text_problem` refuses, as (its dotted path, the problem): the
    one walk that the strings of JSON uploads go through. None when all of them can be stored."""
    pending: list[tuple[str, Any]] = list(item.items())
    for path, child in pending:  # in document order, breadth first: the list grows as the walk goes
        problem = text_problem(path) or (text_problem(child) if isinstance(child, str) else None)
        if problem:
            return path, problem
        if isinstance(child, dict):
            pending.extend((f"{path}.{key}", grandchild) for key, grandchild in child.items())
        elif isinstance(child, list):
            pending.extend((f"{path}.{index}", grandchild) for index, grandchild in enumerate(child))
    return None


# Valid JSON in UTF-8 can put a NUL or an unpaired surrogate into a string only by a \u escape of NUL or of a
# surrogate, or by a surrogate's own UTF-8 bytes (ED A0-BF ..), which json.loads decodes with 'surrogatepass'.
# Two patterns: each starts with a fixed byte that re can skip to, one alternation of both is 6 times slower.
_ESCAPED_NUL_OR_SURROGATE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_SURROGATE_IN_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")


def json_may_hold_unstorable_text(raw: bytes) -> bool:
    """Whether a key or string of the JSON document `raw` may be one that `text_problem` refuses: False lets a large
    document skip the walk. A document in UTF-16 or UTF-32 is not looked into (True)."""
    if json.detect_encoding(raw) not in ("utf-8", "utf-8-sig"):
        return True
    return _ESCAPED_NUL_OR_SURROGATE.search(raw) is not None or _SURROGATE_IN_UTF8.search(raw) is not None


def decoded(part: str, raw: bytes) -> str:
    """The part as text: UTF-8 with an optional BOM that `text_problem` accepts; a problem names the line.

    Every value read from the text is a piece of it, so it is storable too: strict UTF-8 decoding leaves no unpaired
    surrogate (so no encoding again, which takes 30 ms for 15 MB of non-ASCII text), and a NUL is refused here. JSON
    can still spell both as \\u escapes: its parser walks those lines.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(part, raw.count(b"\n", 0, error.start) + 1, "the file is not valid UTF-8") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise invalid(part, text.count("\n", 0, nul) + 1, _NUL)
    return text.removeprefix(BOM)


def invalid(part: str, line: int | None, problem: str) -> InvalidUpload:
    """The upload's refusal: "<part> line <n>: <problem>." (no line: about the whole part)."""
    where = part if line is None else f"{part} line {line}"
    return InvalidUpload(f"{where}: {problem}.", field=part)


def resource_key(databuilder_id: str) -> str:
    """The asset key of the resource with this databuilder id: the one key rule of every format, so the same
    databuilder id has the same key, and public id, whether a CSV, a JSONL file or dbt artifacts name it. The id is
    one escaped key segment: a '/' in it separates nothing."""
    return escape(databuilder_id)


def key_problem(key: str) -> str | None:
    """Why the assets index cannot hold `key`, or None."""
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8")) > MAX_KEY_BYTES:  # the encode only when it may fail
        return f"the resource's identity is longer than {MAX_KEY_BYTES} bytes"
    return None


def checked_key(key: str, part: str, line: int) -> str:
    """`key` if the assets index can hold it."""
    problem = key_problem(key)
    if problem:
        raise invalid(part, line, problem)
    return key


def name_problem(name: str, parent_key: str = "") -> str | None:
    """Why `name` cannot be the name of a resource under `parent_key` (the indexes cannot hold it), or None; the
    caller puts the field's name before it."""
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    if (len(name) + len(parent_key)) * 4 > MAX_INDEXED_BYTES:  # the encodes only when it may fail
        # lower() can lengthen a name ('Ⱥ' has 2 bytes, 'ⱥ' 3), and lower(name) is indexed too.
        name_bytes = max(len(name.encode("utf-8")), len(name.lower().encode("utf-8")))
        size = name_bytes + len(parent_key.encode("utf-8"))
        if size > MAX_INDEXED_BYTES:
            return (f"is too long to index: with its parent's identity it takes {size} bytes in UTF-8, more than "
                    f"{MAX_INDEXED_BYTES}")  # fmt: skip
    return None


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
