"""(Interim: replaced by the dbt helper's module.) Models with failing or warning tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class FailingTests:
    warning: list[uuid.UUID]
    failing: list[uuid.UUID]


async def failing_tests(conn: asyncpg.Connection, integration_id: uuid.UUID) -> FailingTests:
    rows = await conn.fetch(
        """
        SELECT m.object_id, bool_or(t.attributes->>'status' IN ('fail', 'error')) AS failing
        FROM assets t JOIN assets m ON m.integration_id = t.integration_id AND m.asset_key = t.parent_key
        WHERE t.integration_id = $1 AND t.kind = 'test' AND t.deleted_at IS NULL AND m.deleted_at IS NULL
          AND t.attributes->>'status' IN ('fail', 'error', 'warn')
        GROUP BY m.object_id ORDER BY m.object_id
        """,
        integration_id,
    )
    return FailingTests(
        [r["object_id"] for r in rows if not r["failing"]], [r["object_id"] for r in rows if r["failing"]]
    )
