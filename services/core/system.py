"""The system status an operator reads (`icp doctor`, the console's system page): each service's recorded
readiness, consumer lag, the outbox backlog, the oldest queued run and dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.core.errors import Forbidden
from services.core.ingestion import Runtime
from services.core.model import Principal
from services.core.store import gauges
from services.core.store import system as system_store
from services.core.store.system import ProcessRow, QueuedRun
from shared.group_lag import PartitionLag

# Every one of these needs a fresh, ready instance for the system to be ready.
REQUIRED_SERVICES = ("api", "scheduler", "connector", "projector", "relay")
# Needed only where deployed: once it has recorded a row, it counts like the required ones.
OPTIONAL_SERVICES = ("notifier",)

LagReader = Callable[[], Awaitable[list[PartitionLag]]]


@dataclass(frozen=True)
class SystemStatus:
    ready: bool
    not_ready: list[str]  # services without a fresh, ready instance
    processes: list[ProcessRow]
    consumer_lag: list[PartitionLag]
    consumer_lag_error: str | None  # why the lag is unknown (the broker did not answer in time, ...)
    outbox: gauges.OutboxBacklog
    oldest_queued_run: QueuedRun | None
    report_dead_letters: int
    outbox_dead_letters: int


async def system_status(rt: Runtime, principal: Principal, read_lag: LagReader) -> SystemStatus:
    if not principal.org_owner:
        raise Forbidden("The system status requires an organization-owner API key.")
    async with rt.pool.acquire() as conn:
        processes = await system_store.processes(conn)
        outbox = await gauges.outbox_backlog(conn)
        oldest = await system_store.oldest_queued_run(conn)
        reports, outbox_dead = await system_store.dead_letter_counts(conn)
    lag_error = None
    try:
        lag = await read_lag()
    except Exception as error:  # the broker's trouble is part of the answer, never a 500
        lag, lag_error = [], f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    not_ready = unready_services(processes)
    return SystemStatus(
        ready=not not_ready, not_ready=not_ready, processes=processes, consumer_lag=lag,
        consumer_lag_error=lag_error, outbox=outbox, oldest_queued_run=oldest, report_dead_letters=reports,
        outbox_dead_letters=outbox_dead,
    )  # fmt: skip


def unready_services(processes: list[ProcessRow]) -> list[str]:
    """The services that count (the required ones, and optional ones that recorded a row) lacking a fresh,
    ready instance."""
    recorded = {p.service for p in processes}
    counted = [*REQUIRED_SERVICES, *(s for s in OPTIONAL_SERVICES if s in recorded)]
    fine = {p.service for p in processes if p.ready and not p.stale}
    return [service for service in counted if service not in fine]
