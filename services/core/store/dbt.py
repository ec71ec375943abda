"""SQL for dbt Core integrations: which models have failing or warning tests, by the latest synced results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

# The live test assets are those of the latest successful sync (the run_results it imported). A model is failing
# when any of its tests failed or errored, warning when one warned and none failed; pass and skipped count for
# nothing. Only models that are live themselves are listed, so every id resolves as a resource.
_FAILING_TESTS = """
SELECT m.object_id, bool_or(t.attributes ->> 'status' IN ('fail', 'error')) AS failing
FROM assets t
JOIN assets m ON m.integration_id = t.integration_id AND m.asset_key = t.parent_key AND m.deleted_at IS NULL
WHERE t.integration_id = $1 AND t.kind = 'test' AND t.deleted_at IS NULL
  AND t.attributes ->> 'status' IN ('fail', 'error', 'warn')
GROUP BY m.asset_key, m.object_id
ORDER BY m.asset_key
"""


@dataclass(frozen=True)
class FailingTests:
    """Model resource ids; a model is in at most one list."""

    warning: list[uuid.UUID]
    failing: list[uuid.UUID]


async def failing_tests(conn: asyncpg.Connection, integration_id: uuid.UUID) -> FailingTests:
    rows = await conn.fetch(_FAILING_TESTS, integration_id)
    return FailingTests(warning=[r["object_id"] for r in rows if not r["failing"]],
                        failing=[r["object_id"] for r in rows if r["failing"]])  # fmt: skip
