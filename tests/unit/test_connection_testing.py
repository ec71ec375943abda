"""A connector answers connection tests; one nobody waits for any more is not answered at all."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.connector.connection_testing import ConnectionTester
from shared.events import ConnectionTestCommand

NOW = datetime(2026, 1, 1, tzinfo=UTC)
answered: list[uuid.UUID] = []


class RecordingTester(ConnectionTester):
    async def answer(self, command: ConnectionTestCommand) -> tuple[bool, str, int]:
        answered.append(command.test_id)
        return True, "ok", 1


def test_a_test_nobody_waits_for_any_more_dials_no_source():
    tester = RecordingTester(pool=None, cipher=None, connector_id="c", allow_private_sources=True, resolver=None,
                             clock=lambda: NOW)  # type: ignore[arg-type]  # fmt: skip
    stale = ConnectionTestCommand(test_id=uuid.uuid4(), source="postgres", configuration={}, timeout_s=10,
                                  occurred_at=NOW - timedelta(minutes=5))  # fmt: skip
    asyncio.run(tester.answer_and_record(stale.to_bytes()))
    assert answered == []
