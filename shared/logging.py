"""structlog setup for our loggers and every stdlib logger: JSON when not on a terminal, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

SECRET_KEY_PATTERN = re.compile(
    r"pass(word)?|secret|token|api[_-]?key|credential|authorization|private[_-]?key", re.IGNORECASE
)
# key=value / "key": "value" fragments inside free text (driver error messages, DSNs).
SECRET_IN_TEXT = re.compile(
    r"(?P<k>(pass(word)?|pwd|secret|token|api[_-]?key)\s*[=:]\s*[\"']?)(?P<v>[^\s\"',;&]+)", re.IGNORECASE
)
DSN_PASSWORD = re.compile(r"(?P<k>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<v>[^@\s]+)(?=@)", re.IGNORECASE)
REDACTED = "[REDACTED]"


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove secrets from free text: known secret values first, then key=value and DSN patterns."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = SECRET_IN_TEXT.sub(lambda m: m.group("k") + REDACTED, text)
    return DSN_PASSWORD.sub(lambda m: m.group("k") + REDACTED, text)


def redact_value(key: str, value: Any) -> Any:
    if SECRET_KEY_PATTERN.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", service: str | None = None) -> None:
    """Our loggers and every stdlib logger (aiokafka, asyncpg, aiohttp) through one chain, redaction included."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    enrich: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    render: list[Any] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_processor,  # last before rendering: nothing added after it escapes redaction
        renderer,
    ]
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*enrich, *render],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*enrich, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are chatty below WARNING; a stricter LOG_LEVEL applies to them too.
    root.setLevel(max(logging.WARNING, numeric_level))
