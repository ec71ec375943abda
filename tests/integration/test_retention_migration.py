"""Migration 0012 redefines the run log's generated `summary`: the events already logged keep theirs, and a compacted
batch's summary is its payload."""

from __future__ import annotations

import json
import shutil
import uuid

import asyncpg
import pytest

from shared.postgres import migrate
from tests.conftest import MIGRATIONS
from tests.support import recreate_database

pytestmark = pytest.mark.integration

EVENTS = [
    ("run.requested.v1", {"trigger": "manual"}),
    ("run.assets_changed.v1", {"upserted": [{"key": "a"}, {"key": "b"}], "deleted": ["c"], "change": "created"}),
    ("run.assets_changed.v1", {"upserted": [{"key": "d"}]}),
    ("run.lineage_reported.v1", {"edges": [{"from_key": "a", "to_key": "b"}]}),
]


async def test_logged_events_keep_their_summaries_and_a_compacted_batch_shows_its_counts(infrastructure, tmp_path):
    dsn = await recreate_database(infrastructure[0], "migrations_0012_it")
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0012":
            shutil.copy(path, tmp_path / path.name)
    await migrate(dsn, tmp_path)
    integration, run = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO integrations (id, external_id, name, source) VALUES ($1, 'i', 'i', 'postgres')",
                           integration)  # fmt: skip
        await conn.executemany(
            "INSERT INTO run_events (run_id, seq, event_id, integration_id, type, occurred_at, payload) "
            "VALUES ($1, $2, $3, $4, $5, now(), $6::jsonb)",
            [(run, seq, uuid.uuid4(), integration, kind, json.dumps(payload))
             for seq, (kind, payload) in enumerate(EVENTS, start=1)],
        )  # fmt: skip
        summaries = "SELECT summary::text FROM run_events ORDER BY seq"
        before = [r[0] for r in await conn.fetch(summaries)]
        shutil.copy(MIGRATIONS / "0012_run_log_retention.sql", tmp_path)
        assert await migrate(dsn, tmp_path) == ["0012_run_log_retention.sql"]
        after = [r[0] for r in await conn.fetch(summaries)]
        await conn.execute("UPDATE run_events SET payload = summary || '{\"compacted\": true}' WHERE seq = 2")
        compacted = await conn.fetchval("SELECT summary::text FROM run_events WHERE seq = 2")
    finally:
        await conn.close()
    assert after == before
    assert before == [None, '{"change": "created", "deleted": 1, "upserted": 2}',
                      '{"change": null, "deleted": 0, "upserted": 1}', '{"edges": 1}']  # fmt: skip
    assert json.loads(compacted) == {"change": "created", "deleted": 1, "upserted": 2, "compacted": True}
