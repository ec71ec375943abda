"""Testing a connection through a connector: the API asks (outbox -> Kafka), any connector answers in PostgreSQL.

The API never dials a source itself: sources are reached only from where the connector runs, with its
network, its SSRF policy and its plug-ins. The answer wakes the waiting request through LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.core.errors import DomainError
from services.core.ingestion import Runtime
from services.core.store import connection_tests as store
from services.core.store import outbox
from shared import topics
from shared.events import ConnectionTestCommand
from shared.postgres import listen_forever


class NoConnectorAnswered(DomainError):
    retriable = True


@dataclass(frozen=True)
class ConnectionTest:
    id: uuid.UUID
    passed: bool
    message: str
    duration_ms: int
    requested_at: datetime
    finished_at: datetime


class ConnectionTests:
    """Requests tests and waits for their answers; `listen()` must run for as long as requests are made."""

    def __init__(self, rt: Runtime, timeout_s: float) -> None:
        self._rt = rt
        self.timeout_s = timeout_s  # how long a connector may try; the API waits a little longer
        self._waiting: dict[uuid.UUID, asyncio.Future[None]] = {}

    async def listen(self) -> None:
        """Wake requests whose answers arrived (NOTIFY); after a reconnect, wake them all to look again."""

        def answered(payload: str) -> None:
            self._wake(self._waiting.get(uuid.UUID(payload)))

        def reconnected() -> None:
            for waiting in self._waiting.values():
                self._wake(waiting)

        await listen_forever(self._rt.pool, store.NOTIFY_CHANNEL, answered, reconnected)

    @staticmethod
    def _wake(waiting: asyncio.Future[None] | None) -> None:
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def run(
        self, integration_id: uuid.UUID | None, requested_by: str, source: str, configuration: dict[str, Any],
        credentials_token: bytes | None,
    ) -> ConnectionTest:  # fmt: skip
        test_id = self._rt.new_id()
        command = ConnectionTestCommand(
            test_id=test_id, source=source, configuration=configuration, timeout_s=self.timeout_s,
            credentials=credentials_token.decode() if credentials_token else None,
        )  # fmt: skip
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await store.insert_pending(conn, test_id, integration_id, requested_by, self._rt.clock())
            await outbox.enqueue(conn, [(topics.CONNECTION_TESTS, str(test_id), command.to_bytes())])
        wait_s = self.timeout_s + min(5.0, self.timeout_s)  # the connector's time, and its way back
        row = await self._answer(test_id, deadline=time.monotonic() + wait_s)
        if row is None or row["status"] == "PENDING":
            raise NoConnectorAnswered(
                f"No connector answered the connection test within {wait_s:g}s; check that a connector is running "
                "and can reach Kafka."
            )
        return ConnectionTest(id=row["id"], passed=row["status"] == "PASSED", message=row["message"] or "",
                              duration_ms=row["duration_ms"] or 0, requested_at=row["requested_at"],
                              finished_at=row["finished_at"])  # fmt: skip

    async def _answer(self, test_id: uuid.UUID, deadline: float) -> asyncpg.Record | None:
        """The test's row once answered, or as it is at the deadline. Woken by NOTIFY, never by polling."""
        while True:
            woken = self._waiting[test_id] = asyncio.get_running_loop().create_future()
            try:
                async with self._rt.pool.acquire() as conn:
                    row = await store.get(conn, test_id)
                if row is None or row["status"] != "PENDING" or time.monotonic() >= deadline:
                    return row
                try:
                    await asyncio.wait_for(woken, timeout=deadline - time.monotonic())
                except TimeoutError:
                    pass  # one last look at the row (a notification can be lost)
            finally:
                del self._waiting[test_id]
