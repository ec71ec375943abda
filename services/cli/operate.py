"""`icp doctor` (the system status), `icp migrate`, `icp rebuild` and `icp compact` (services.manage, run here)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import typer
from rich.table import Table

from services.cli.context import api, command
from services.cli.output import OUTPUT, Format, cell, console, emit
from services.manage.__main__ import ManageSettings, do_compact, do_migrate, do_rebuild
from shared.logging import configure_logging


def register(app: typer.Typer) -> None:
    command(app, "doctor")(doctor)
    command(app, "migrate")(migrate)
    command(app, "rebuild")(rebuild)
    command(app, "compact")(compact)


def doctor(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """Readiness of every service, consumer lag, outbox, oldest queued run, dead letters; exit 0 only when all
    services are ready."""
    status = api(ctx).get("/api/system/status")
    if output is Format.table:
        show_status(status)
    else:
        emit(status, output)
    raise typer.Exit(0 if status["ready"] else 1)


def show_status(status: dict[str, Any]) -> None:
    services = Table("service", "instance", "ready", "checks", "seen at", title="services")
    for row in status["services"]:
        state = "[yellow]stale[/]" if row["stale"] else "[green]ready[/]" if row["ready"] else "[red]not ready[/]"
        checks = ", ".join(f"{name}: {result}" for name, result in row["checks"].items())
        services.add_row(row["service"], row["instance"], state, checks, row["seenAt"])
    console.print(services)
    lag = status["consumerLag"]
    if status["consumerLagError"]:
        console.print(f"consumer lag: [red]unknown[/] ({status['consumerLagError']})", markup=True)
    else:
        by_group: dict[str, int] = {}
        for partition in lag:
            by_group[partition["group"]] = by_group.get(partition["group"], 0) + partition["lag"]
        console.print("consumer lag: " + (", ".join(f"{g} {n}" for g, n in by_group.items()) or "no commits yet"))
    outbox = status["outbox"]
    console.print(f"outbox: {outbox['depth']} rows waiting, the oldest {outbox['oldestAgeSeconds']:.1f}s")
    queued = status["oldestQueuedRun"]
    console.print("oldest queued run: " + (
        f"{queued['ingestionRunId']} of {queued['integrationExternalId']}, requested {queued['requestedAt']}"
        if queued else "none"
    ))  # fmt: skip
    dead = status["deadLetters"]
    console.print(f"dead letters: {dead['reports']} connector reports, {dead['outbox']} outbox rows")
    if status["ready"]:
        console.print("[green]ready[/]: every service has a fresh, ready instance")
    else:
        console.print(f"[red]not ready[/]: {cell(', '.join(status['notReady']))}")


def migrate() -> None:
    """Create the database if needed, apply the schema migrations and create the Kafka topics (from the
    environment: DATABASE_URL, KAFKA_*)."""
    asyncio.run(do_migrate(_settings()))


def rebuild(
    from_log: bool = typer.Option(False, "--from-log", help="Replay the whole log, not the latest snapshot and the "
                                  "events after it (only a log that was never compacted)."),
) -> None:  # fmt: skip
    """Recompute the read models (runs, assets, lineage, sync scopes): the latest snapshot of them and the run log
    after it (DATABASE_URL)."""
    raise typer.Exit(asyncio.run(do_rebuild(_settings(), from_log=from_log)))


def compact(
    keep_days: float | None = typer.Option(None, "--keep-days", min=0, help="Keep the batches of runs that ended "
                                           "within this many days (default: RUN_LOG_KEEP_DAYS, 30)."),
    keep_runs: int | None = typer.Option(None, "--keep-runs", min=1, help="Keep the batches of each integration's "
                                         "last N successful syncs (default: RUN_LOG_KEEP_RUNS, 3)."),
) -> None:  # fmt: skip
    """Snapshot the read models, then replace the asset and lineage batches of finished runs the retention policy
    lets go by their counts; lifecycle events stay whole (DATABASE_URL). The scheduler does this periodically."""
    settings = _settings()
    policy = settings.retention_policy()
    policy = replace(policy, keep_days=policy.keep_days if keep_days is None else keep_days,
                     keep_runs=policy.keep_runs if keep_runs is None else keep_runs)  # fmt: skip
    raise typer.Exit(asyncio.run(do_compact(settings, policy)))


def _settings() -> ManageSettings:
    settings = ManageSettings()
    configure_logging(settings.log_level, settings.log_format, service="manage")
    return settings
