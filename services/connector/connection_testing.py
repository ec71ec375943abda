"""Answers connection tests: connect to a source and read its catalog within the test's timeout.

Any connector instance may answer (consumer group `connector-tests`); the answer goes to PostgreSQL, whose
NOTIFY wakes the API request waiting for it. A redelivered request is answered again, harmlessly: the first
recorded answer wins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.connector.sources import open_source
from services.connector.sources.base import SourceError
from services.core.crypto import CredentialCipher
from services.core.errors import DomainError
from services.core.model import Source
from services.core.sources import Resolver
from services.core.store import connection_tests
from shared.events import ConnectionTestCommand, parse_test_command
from shared.logging import redact_text
from shared.postgres import with_database

log = structlog.get_logger()
CONSUMER_GROUP = "connector-tests"


@dataclass(frozen=True)
class ConnectionTester:
    pool: asyncpg.Pool
    cipher: CredentialCipher
    connector_id: str
    allow_private_sources: bool
    resolver: Resolver
    clock: Callable[[], datetime]

    async def answer(self, command: ConnectionTestCommand) -> tuple[bool, str, int]:
        """(passed, message without secrets, duration in ms)."""
        started = time.monotonic()
        secrets: tuple[str, ...] = ()
        try:
            credentials = self.cipher.decrypt(command.credentials.encode()) if command.credentials else {}
            secrets = tuple(str(value) for value in credentials.values() if value)
            async with asyncio.timeout(command.timeout_s):
                await self._connect_and_read(command, credentials)
            passed, message = True, "Connected and read the catalog."
        except TimeoutError:
            passed, message = False, f"The source did not answer within {command.timeout_s:g}s."
        except (SourceError, DomainError, ValueError) as error:
            passed, message = False, str(getattr(error, "detail", error))
        except Exception as error:  # a bug must still produce an answer, not a hanging request
            log.exception("connection_test_crashed", test_id=str(command.test_id))
            passed, message = False, f"Internal connector error: {type(error).__name__}: {error}"
        return passed, redact_text(message, secrets), round((time.monotonic() - started) * 1000)

    async def _connect_and_read(self, command: ConnectionTestCommand, credentials: dict[str, Any]) -> None:
        plugin = await open_source(
            Source(command.source), command.configuration, credentials,
            allow_private=self.allow_private_sources, resolver=self.resolver,
        )  # fmt: skip
        try:
            await plugin.test_connection()
        finally:
            await plugin.close()

    async def answer_and_record(self, raw: bytes | None) -> None:
        try:
            command = parse_test_command(raw or b"")
        except ValidationError as error:
            log.error("connection_test_unreadable", errors=error.error_count())
            return
        if (self.clock() - command.occurred_at).total_seconds() > 2 * command.timeout_s + 5:
            # Nobody waits for it any more (the API answered 503): a backlog after an outage dials no source.
            log.info("connection_test_expired", test_id=str(command.test_id))
            return
        passed, message, duration_ms = await self.answer(command)
        try:
            await with_database(self.pool, lambda conn: connection_tests.record_result(
                conn, command.test_id, passed=passed, message=message, duration_ms=duration_ms,
                connector_id=self.connector_id, at=self.clock(),
            ), attempts=5)  # fmt: skip
        except Exception as error:  # the API gives up on it soon anyway; never the consumer's death
            log.error("connection_test_not_recorded", test_id=str(command.test_id), error=str(error))
            return
        log.info("connection_tested", test_id=str(command.test_id), passed=passed, duration_ms=duration_ms)


async def answer_connection_tests(consumer: AIOKafkaConsumer, tester: ConnectionTester, concurrency: int = 4) -> None:
    """Each fetched batch is answered concurrently (bounded), then its offsets are committed."""
    slots = asyncio.Semaphore(concurrency)

    async def bounded(raw: bytes | None) -> None:
        async with slots:
            await tester.answer_and_record(raw)

    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=4 * concurrency)
        if not batches:
            continue
        await asyncio.gather(*(bounded(m.value) for messages in batches.values() for m in messages))
        try:
            await consumer.commit({tp: messages[-1].offset + 1 for tp, messages in batches.items()})
        except KafkaError as error:  # redelivered after a rebalance: answered again, the first answer stays
            log.warning("commit_failed", error=str(error))
