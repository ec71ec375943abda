"""`python -m services.manage migrate|rebuild`, which `icp migrate` and `icp rebuild` run too."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from services.core.store import rebuild
from shared.kafka import ensure_topics
from shared.logging import configure_logging
from shared.postgres import create_pool, ensure_database, migrate
from shared.settings import CommonSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "core" / "store" / "migrations"


async def do_migrate(settings: CommonSettings) -> None:
    await ensure_database(settings.database_url)
    applied = await migrate(settings.database_url, MIGRATIONS)
    created = await ensure_topics(settings)
    print(
        f"schema up to date ({len(applied)} migration(s) applied now); topics ready ({len(created)} created now: "
        f"{settings.kafka_topic_partitions} partitions, replication factor {settings.kafka_replication_factor}, "
        f"min.insync.replicas {settings.kafka_min_insync_replicas})"
    )


async def do_rebuild(settings: CommonSettings) -> None:
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            replayed = await rebuild.rebuild(conn)
    finally:
        await pool.close()
    print(f"read models rebuilt from {replayed} run log event(s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.manage")
    parser.add_argument("command", choices=["migrate", "rebuild"])
    args = parser.parse_args()
    settings = CommonSettings()
    configure_logging(settings.log_level, settings.log_format, service="manage")
    asyncio.run(do_migrate(settings) if args.command == "migrate" else do_rebuild(settings))


if __name__ == "__main__":
    main()
