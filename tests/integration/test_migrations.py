"""The migration runner: idempotent, and loud about an applied migration that changed."""

from __future__ import annotations

import pytest

from shared.postgres import MigrationChanged, migrate
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
