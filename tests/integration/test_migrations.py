"""The migration runner: idempotent, and loud about an applied migration that changed."""

from __future__ import annotations

import shutil
import uuid

import asyncpg
import pytest

from services.core.objects import object_id
from shared.postgres import MigrationChanged, migrate
from tests.conftest import MIGRATIONS
from tests.support import recreate_database

pytestmark = pytest.mark.integration


async def test_migrations_apply_once_and_refuse_a_changed_file(infrastructure, tmp_path):
    dsn = await recreate_database(infrastructure[0], "migrations_it")
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    assert await migrate(dsn, tmp_path) == ["0001_a.sql"]
    (tmp_path / "0002_b.sql").write_text("CREATE TABLE b (id int);")
    assert await migrate(dsn, tmp_path) == ["0002_b.sql"]
    assert await migrate(dsn, tmp_path) == []
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationChanged, match=r"0001_a\.sql changed"):
        await migrate(dsn, tmp_path)


async def test_the_data_object_migration_gives_crawled_catalogs_their_database_and_object_ids(infrastructure, tmp_path):
    """Assets crawled before 0005 start at schemas (parent NULL): 0005 adds the database object above them."""
    dsn = await recreate_database(infrastructure[0], "migrations_0005_it")
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0005":
            shutil.copy(path, tmp_path / path.name)
    await migrate(dsn, tmp_path)
    integration, run = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO integrations (id, external_id, name, source, configuration) VALUES "
                           "($1, 'old', 'old', 'postgres', '{\"database\": \"shop db\"}')", integration)  # fmt: skip
        await conn.execute(
            "INSERT INTO runs (id, integration_id, status, trigger, requested_at, completed_at, version) "
            "VALUES ($1, $2, 'SUCCESS', 'manual', now(), now(), 3)", run, integration,
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO assets (integration_id, asset_key, kind, name, parent_key, fingerprint, attributes, "
            "created_run_id, updated_run_id) VALUES ($1, $2, $3, $4, $5, 'f', '{}', $6, $6)",
            [(integration, "shop db/sales", "schema", "sales", None, run),
             (integration, "shop db/sales/orders", "table", "orders", "shop db/sales", run)],
        )  # fmt: skip
        shutil.copy(MIGRATIONS / "0005_data_objects.sql", tmp_path)
        assert await migrate(dsn, tmp_path) == ["0005_data_objects.sql"]
        rows = await conn.fetch("SELECT asset_key, kind, name, parent_key, object_id, created_at FROM assets "
                                "ORDER BY asset_key")  # fmt: skip
    finally:
        await conn.close()
    assert [(r["asset_key"], r["kind"], r["name"], r["parent_key"]) for r in rows] == [
        ("shop db", "database", "shop db", ""), ("shop db/sales", "schema", "sales", "shop db"),
        ("shop db/sales/orders", "table", "orders", "shop db/sales")]  # fmt: skip
    assert all(r["object_id"] == object_id(integration, r["asset_key"]) and r["created_at"] for r in rows)
