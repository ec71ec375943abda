"""`python -m services.manage migrate|rebuild|compact`, which `icp migrate`, `icp rebuild` and `icp compact` run too."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from services.core import retention
from services.core.errors import Conflict
from services.core.retention import RetentionPolicy
from services.core.store import rebuild, snapshots
from services.scheduler.settings import RetentionSettings
from shared.kafka import ensure_topics
from shared.logging import configure_logging
from shared.postgres import create_pool, ensure_database, migrate
from shared.settings import CommonSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "core" / "store" / "migrations"


class ManageSettings(CommonSettings, RetentionSettings):
    pass


async def do_migrate(settings: CommonSettings) -> None:
    await ensure_database(settings.database_url)
    applied = await migrate(settings.database_url, MIGRATIONS)
    created = await ensure_topics(settings)
    print(
        f"schema up to date ({len(applied)} migration(s) applied now); topics ready ({len(created)} created now: "
        f"{settings.kafka_topic_partitions} partitions, replication factor {settings.kafka_replication_factor}, "
        f"min.insync.replicas {settings.kafka_min_insync_replicas})"
    )


async def do_rebuild(settings: CommonSettings, *, from_log: bool = False) -> int:
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            started = time.perf_counter()
            replayed = await rebuild.rebuild(conn, from_snapshot=not from_log)
            seconds = time.perf_counter() - started
            snapshot = None if from_log else await snapshots.latest(conn)
    except Conflict as conflict:
        print(conflict.detail)
        return 1
    finally:
        await pool.close()
    base = f"snapshot {snapshot.id} (stream position {snapshot.stream_position:,}) + " if snapshot else ""
    print(f"read models rebuilt from {base}{replayed:,} run log event(s) replayed in {seconds:.1f}s")
    return 0


async def do_compact(settings: CommonSettings, policy: RetentionPolicy) -> int:
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            done = await retention.compact(conn, policy, datetime.now(UTC))
    finally:
        await pool.close()
    if done is None:
        print("another compaction or a rebuild is under way; nothing done")
        return 1
    s, c = done.snapshot, done.compacted
    copied = ", ".join(f"{rows:,} {model}" for model, rows in s.rows.items())
    print(f"snapshot {s.id} at stream position {s.stream_position:,} ({copied}); compacted the batches of "
          f"{c.runs:,} run(s): {c.events:,} event(s), {c.bytes_before / 1e6:.1f} MB of payload (kept: runs ended "
          f"within {policy.keep_days:g} days, the last {policy.keep_runs} successful syncs)")  # fmt: skip
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.manage")
    parser.add_argument("command", choices=["migrate", "rebuild", "compact"])
    parser.add_argument("--from-log", action="store_true", help="rebuild: replay the whole log (never compacted)")
    args = parser.parse_args()
    settings = ManageSettings()
    configure_logging(settings.log_level, settings.log_format, service="manage")
    if args.command == "migrate":
        asyncio.run(do_migrate(settings))
    elif args.command == "rebuild":
        raise SystemExit(asyncio.run(do_rebuild(settings, from_log=args.from_log)))
    else:
        raise SystemExit(asyncio.run(do_compact(settings, settings.retention_policy())))


if __name__ == "__main__":
    main()
