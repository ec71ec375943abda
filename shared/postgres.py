"""Postgres helpers: a pool with JSON codecs, a forward-only migration runner, a LISTEN that survives restarts."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import structlog

from shared.errors import is_retriable

log = structlog.get_logger()
T = TypeVar("T")
MIGRATIONS_LOCK_ID = 7_215_001  # advisory lock: concurrent starters apply migrations once


class MigrationChanged(RuntimeError):
    """An applied migration's file no longer matches what was applied."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A released connection needs no reset query (asyncpg's default costs a round trip on every release, a third of
    a simple API request's): our code keeps no session state on pooled connections. Settings are SET LOCAL, cursors
    live in transactions, listeners are removed by their owner, temporary tables dropped by theirs; asyncpg itself
    still rolls back a transaction left open and forgets listener callbacks before this is called."""


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_keep_session, **kwargs
    )
    assert pool is not None
    return pool


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if it does not exist (connects to `postgres` to do so)."""
    name = dsn.rsplit("/", 1)[1].split("?", 1)[0]
    admin_dsn = dsn.rsplit("/", 1)[0] + "/postgres"
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def migrate(dsn: str, migrations_dir: Path) -> list[str]:
    """Apply every `NNNN_*.sql` file not yet recorded in schema_migrations, in order, one transaction each."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        for path in sorted(migrations_dir.glob("*.sql")):
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    raise MigrationChanged(
                        f"migration {path.name} changed after it was applied to this database; "
                        "add a new migration instead (or recreate a development database)"
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", path.name, checksum
                )
            applied_now.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK_ID)
        await conn.close()
    return applied_now


async def listen_forever(
    pool: asyncpg.Pool,
    channel: str,
    on_notify: Callable[[str], None],
    on_connected: Callable[[], None],
    reconnect_after_s: float = 1.0,
) -> None:
    """Hold a LISTEN connection on `channel`, and open another whenever it is lost (a database restart).

    `on_notify(payload)` for each notification; `on_connected()` after every (re)connect, so callers can catch
    up on what was notified while nobody listened. Runs until cancelled; anything but a lost connection is a
    defect and ends it (its supervisor then takes the process down)."""
    while True:
        try:
            await _listen_until_lost(pool, channel, on_notify, on_connected)
            log.warning("listener_lost", channel=channel, error="the database closed the connection")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("listener_lost", channel=channel, error=str(error))
        await asyncio.sleep(reconnect_after_s)


async def _listen_until_lost(
    pool: asyncpg.Pool, channel: str, on_notify: Callable[[str], None], on_connected: Callable[[], None]
) -> None:
    lost = asyncio.Event()

    def on_lost(_: object) -> None:
        lost.set()

    def notified(_: object, __: int, ___: str, payload: str) -> None:
        on_notify(payload)

    async with pool.acquire() as conn:
        conn.add_termination_listener(on_lost)
        await conn.add_listener(channel, notified)
        on_connected()
        try:
            await lost.wait()
        finally:
            conn.remove_termination_listener(on_lost)
            if not conn.is_closed():
                await conn.remove_listener(channel, notified)


async def with_database(
    pool: asyncpg.Pool, query: Callable[[asyncpg.Connection], Awaitable[T]], attempts: int | None = None
) -> T:
    """Run `query` on a pooled connection, waiting out a database outage (retriable errors, backoff up to 10 s).

    `attempts=None` waits as long as the outage lasts; otherwise the last error is raised after that many."""
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            async with pool.acquire() as conn:
                return await query(conn)
        except Exception as error:
            if not is_retriable(error) or (attempts is not None and attempt >= attempts):
                raise
            log.warning("database_unavailable", error=f"{type(error).__name__}: {error}", retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
