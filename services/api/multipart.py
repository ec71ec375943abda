"""Reading a multipart/form-data upload into named parts, with a size cap, and an actionable 400 for a client
that sent something else (Secoda's docs print the form as JSON: some clients send a file *path* as JSON)."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from services.api.problems import BadRequest

MAX_UPLOAD_BYTES = 128 * 1024 * 1024  # all parts together (the 100,000-resource benchmark upload is 22 MB)


async def read_parts(
    request: web.Request, expected: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """The parts named in `expected`/`optional` (others are read past and ignored), each in full."""
    wanted = ", ".join([f"'{p}'" for p in expected] + [f"optional '{p}'" for p in optional])
    how = f"Send the file{'s' if len(expected) + len(optional) > 1 else ''} as multipart/form-data, part {wanted}"
    if request.content_type != "multipart/form-data":
        got = request.content_type or "no Content-Type"
        raise BadRequest(f"{how} (the file's content, not a path to it); got {got}.", field="body")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as error:  # no boundary
        raise BadRequest(f"{how}: the multipart body cannot be read ({error}).", field="body") from None
    parts: dict[str, bytes] = {}
    total = 0
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest(f"{how}: nested multipart bodies are not accepted.", field="body")
            name = part.name or ""
            keep = name in expected or name in optional
            if keep and name in parts:
                raise BadRequest(f"The part '{name}' was sent twice.", field=name)
            chunks = bytearray()
            while chunk := await part.read_chunk(1024 * 1024):
                total += len(chunk)
                if total > MAX_UPLOAD_BYTES:
                    raise BadRequest(f"The upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.",
                                     field=name or "body")  # fmt: skip
                if keep:
                    chunks.extend(chunk)
            if keep:
                parts[name] = bytes(chunks)
    except (ValueError, HttpProcessingError) as error:  # a truncated body, a malformed part header
        reason = error.message if isinstance(error, HttpProcessingError) else str(error)
        raise BadRequest(f"{how}: the multipart body cannot be read ({reason[:100]}).", field="body") from None
    for name in expected:
        if name not in parts:
            raise BadRequest(f"{how}: the part '{name}' is missing.", field=name)
    return parts
