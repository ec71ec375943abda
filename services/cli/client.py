"""The CLI's HTTP client: JSON calls and Server-Sent Events, every failure turned into one readable line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0  # a connection test may take CONNECTION_TEST_TIMEOUT_SECONDS twice, plus 5 s
STREAM_SILENCE_S = 45.0  # the server sends a comment every 15 s: a stream silent for longer is a dead connection


class CliError(Exception):
    """What went wrong, as one line, never a traceback. Exit code 3: apart from a run's FAILED (1) and
    CANCELLED (2), and from usage errors (2)."""

    exit_code = 3

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the API's HTTP status, when it answered


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


class ApiClient:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_S)

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """The response's JSON (None for an empty body); a non-2xx answer raises CliError with its detail."""
        response = self._send(method, path, body, params)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=_given(params))

    def pages(self, path: str, **params: Any) -> Iterator[Any]:
        """Each page's items, following `Link: rel="next"` until the last page."""
        response = self._send("GET", path, None, _given(params))
        while True:
            yield from response.json()
            following = response.links.get("next", {}).get("url")
            if not following:
                return
            response = self._send("GET", following, None, None)

    def _send(self, method: str, path: str, body: Any, params: dict[str, Any] | None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        if response.status_code >= 400:
            raise CliError(problem_line(response.status_code, response.text), response.status_code)
        return response

    def events(self, path: str, last_event_id: str | None = None) -> Iterator[SseEvent]:
        """The events of a Server-Sent Events stream (after `last_event_id`) until it ends: the server closed it,
        or the connection broke or went silent once open (the caller resumes from the last id it saw)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else None
        timeout = httpx.Timeout(TIMEOUT_S, read=STREAM_SILENCE_S)
        try:
            with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise CliError(problem_line(response.status_code, response.read().decode(errors="replace")))
                try:
                    yield from parse_sse(response.iter_lines())
                except (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError):
                    return  # open, then broken or silent: an end like the server's
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, error: httpx.HTTPError) -> CliError:
        reason = str(error) or type(error).__name__
        return CliError(f"cannot reach the API at {self.url}: {reason} (set --url or ICP_URL)")


def _given(params: dict[str, Any]) -> dict[str, Any] | None:
    return {k: v for k, v in params.items() if v is not None} or None


def problem_line(status: int, text: str) -> str:
    """A problem+json answer as `403: <detail>` (plus the first invalid field's message, if any)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"{status}: {text.strip()[:300] or 'no details'}"
    detail = body.get("detail") or body.get("message") or body.get("title") or "no details"
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail += f" ({errors[0].get('field')}: {errors[0].get('message')})"
    return f"{status}: {detail}"


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Server-Sent Events from a stream's lines: comments skipped, multi-line data joined."""
    event_id: str | None = None
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield SseEvent(event_id, kind, "\n".join(data))
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
        elif field == "event":
            kind = value
    if data:
        yield SseEvent(event_id, kind, "\n".join(data))
