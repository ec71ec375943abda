"""Test helpers: source databases of known shape, polling with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

T = TypeVar("T")

SHOP_SCHEMA = """
CREATE SCHEMA sales;
COMMENT ON SCHEMA sales IS 'Sales data';
CREATE TABLE sales.customers (id serial PRIMARY KEY, name text NOT NULL, email text);
COMMENT ON TABLE sales.customers IS 'People who buy';
COMMENT ON COLUMN sales.customers.email IS 'Contact address';
CREATE TABLE sales.orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES sales.customers (id),
    total numeric(12, 2)
);
CREATE VIEW sales.big_orders AS SELECT id, customer_id, total FROM sales.orders WHERE total > 100;
CREATE SCHEMA hr;
CREATE TABLE hr.employees (id int PRIMARY KEY, name text NOT NULL, manager_id int REFERENCES hr.employees (id),
                           salary numeric);
"""
# the database; public + sales + hr = 3 schemas; customers, orders, big_orders, employees = 4 relations;
# 3+3+3+4 = 13 columns.
SHOP_ASSETS = 1 + 3 + 4 + 13
SHOP_COUNTED = SHOP_ASSETS - 1  # what a run counts: the database is the level above schemas, not a counted asset


def admin_dsn(dsn: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/postgres"


async def recreate_database(dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn(dsn))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return dsn.rsplit("/", 1)[0] + "/" + name


async def create_shop_database(dsn: str, name: str) -> str:
    source = await recreate_database(dsn, name)
    conn = await asyncpg.connect(source)
    try:
        await conn.execute(SHOP_SCHEMA)
    finally:
        await conn.close()
    return source


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0, interval: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
