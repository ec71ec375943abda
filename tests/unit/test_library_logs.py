"""Log lines of libraries (aiokafka, asyncpg, aiohttp) go through the same chain as ours: JSON, redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.logging import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_a_library_warning_is_one_json_line_with_its_secrets_redacted(restore_logging, capsys):
    logging.getLogger().handlers.clear()  # as in a fresh service process (pytest adds its own per phase)
    configure_logging("INFO", "json", service="relay")
    logging.getLogger("aiokafka.conn").warning(
        "connection to %s failed: password=%s", "postgresql://bob:hunter2@db:5432/x", "hunter3"
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert (record["logger"], record["level"], record["service"]) == ("aiokafka.conn", "warning", "relay")
    assert "hunter2" not in line and "hunter3" not in line
    assert "postgresql://bob:[REDACTED]@db:5432/x" in record["event"]


def test_a_library_exception_is_rendered_into_the_json_line_redacted(restore_logging, capsys):
    logging.getLogger().handlers.clear()  # as in a fresh service process (pytest adds its own per phase)
    configure_logging("INFO", "json", service="projector")
    try:
        raise ConnectionError("auth failed, api_key=s3cr3t-key")
    except ConnectionError:
        logging.getLogger("asyncpg.pool").exception("pool connection lost")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["event"] == "pool connection lost" and record["level"] == "error"
    assert "ConnectionError" in record["exception"] and "s3cr3t-key" not in record["exception"]


def test_library_debug_chatter_stays_out_and_our_level_still_applies(restore_logging, capsys):
    logging.getLogger().handlers.clear()  # as in a fresh service process (pytest adds its own per phase)
    configure_logging("ERROR", "json")
    logging.getLogger("aiohttp.access").info("GET /health 200")
    logging.getLogger("aiokafka").warning("below our level")
    structlog.get_logger().warning("ours, below our level")
    structlog.get_logger().error("ours", token="t0k3n")
    lines = capsys.readouterr().err.strip().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["ours"]
    assert "t0k3n" not in lines[0]
