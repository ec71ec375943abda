"""The one contract every crawled source plug-in meets, against its real engine (or the emulator that speaks the
platform's wire protocol to its official client).

Every platform creates the same logical fixture in its engine (see FIXTURE), is crawled, and is checked against its
expected asset set; re-crawled unchanged (nothing changes); then changed (`hr.employees` dropped, `sales.orders.note`
added) and re-crawled, with exact diff counts. A platform is a module in tests/sources/platforms/ with a
`PLATFORMS` list of objects meeting `ContractPlatform`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.core.sources import SourceSpec

FIXTURE = """
The logical fixture, the same in every engine (what a platform lacks, it leaves out and says so in `expected`):
  schema sales
    table customers  (comment 'People who buy')
      id      integer       not null, primary key
      email   varchar(200)  not null, unique             (comment 'Where receipts go')
      tags    array of varchar (the platform's nested type, if it has one)
    table orders
      id          integer        not null, primary key
      customer_id integer        references sales.customers(id)  (foreign key fk_orders_customer)
      amount      decimal(10,2)
      created_at  timestamp
    view big_orders  = SELECT id, customer_id, amount FROM sales.orders WHERE amount > 100
  schema hr           (comment 'People who work here', where schemas have comments)
    table employees
      id    integer not null, primary key
      name  varchar(100)
The change: DROP TABLE hr.employees; ALTER TABLE sales.orders ADD COLUMN note varchar(50).
  -> created 1 (the column), updated 0, deleted 3 (the table and its two columns), where tables carry no
     property of their columns: a table's fingerprint never covers its children.
"""


@dataclass(frozen=True)
class Expected:
    """What a crawl of the fixture finds, exactly: every key and its kind, some attributes, and the diff counts."""

    assets: Mapping[str, str]  # key -> kind, for the whole first crawl (containers included)
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # key -> a subset of its attributes
    changed: tuple[int, int, int] = (1, 0, 3)  # created, updated, deleted by the change (counted assets only)


class ContractPlatform(Protocol):
    name: str  # the test id
    spec: SourceSpec[Any, Any]  # the platform's spec (the one services.core.sources.SPECS registers)
    expected: Expected

    def unavailable(self) -> str | None:
        """Why the engine cannot be used here (the test then skips; in CI it fails), or None."""
        ...

    async def create_fixture(self) -> None:
        """(Re)create the logical fixture from scratch: a second call leaves the same state as the first."""
        ...

    async def change_fixture(self) -> None: ...

    def configuration(self) -> dict[str, Any]: ...

    def credentials(self) -> dict[str, Any]:
        """Working credentials; `bad_credentials` are refused by the engine (None: the platform has no secret)."""
        ...

    def bad_credentials(self) -> dict[str, Any] | None: ...


def require(platform: ContractPlatform) -> None:
    """Skip a test of a platform whose engine is not running here; in CI (which starts every engine) fail it."""
    import pytest

    reason = platform.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{platform.name}: {reason}")
        pytest.skip(reason)


def counted_assets(expected: Expected) -> int:
    """How many assets a first crawl of the fixture counts (every asset but the containers at the root)."""
    return sum(kind != "database" or "/" in key for key, kind in expected.assets.items())


def listening(port_variable: str, default: int) -> tuple[int, str | None]:
    """The port an engine's test instance listens on (from the environment `make test` sets), and why it cannot be
    used if nothing listens there."""
    port = int(os.environ.get(port_variable, default))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return port, None
    except OSError:
        return port, f"nothing listens on 127.0.0.1:{port} ({port_variable}); `make test` starts the engines"
