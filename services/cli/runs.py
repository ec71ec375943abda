"""`icp run NAME [--follow]`, `icp cancel NAME`, `icp runs list NAME`, `icp runs show NAME RUN_ID`.

`run --follow` exits with the run's outcome: 0 SUCCESS, 1 FAILED, 2 CANCELLED (3: the API could not be reached
or refused)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from services.cli.client import ApiClient
from services.cli.context import api, command
from services.cli.integrations import path
from services.cli.output import OUTPUT, Format, console, emit

runs_app = typer.Typer(no_args_is_help=True)
EXIT_CODES = {"SUCCESS": 0, "FAILED": 1, "CANCELLED": 2}
RESUME_AFTER_S = 1.0  # a stream that ended early is resumed after this pause
RUN_COLUMNS = ("ingestionRunId", "status", "startedAt", "completedAt", "assetsProcessed", "message")
EVENT_COLUMNS = ("seq", "type", "occurredAt", "details")
CHANGE_COLUMNS = ("key", "kind", "change")
# What the live display says after each event type (counts are added from the event's details).
STAGES = {
    "run.requested.v1": "queued",
    "run.cancel_requested.v1": "cancelling",
    "run.started.v1": "crawling",
    "run.progressed.v1": "crawling",
    "run.assets_changed.v1": "crawling",
    "run.warnings_reported.v1": "crawling",
}


def register(app: typer.Typer) -> None:
    command(app, "run")(run)
    command(app, "cancel")(cancel)


def run(ctx: typer.Context, name: str,
        follow: bool = typer.Option(False, "--follow", "-f", help="Show progress live; exit with the outcome.")
        ) -> None:  # fmt: skip
    """Trigger a run of an integration."""
    client = api(ctx)
    started = client.call("POST", path(name, "/run"))
    run_id = started["ingestionRunId"]
    console.print(f"run {run_id} of {name} requested")
    if follow:
        raise typer.Exit(follow_run(client, name, run_id))


def follow_run(client: ApiClient, name: str, run_id: str) -> int:
    """Show the run's events as they happen (its SSE stream ends with the run), then its outcome. A stream that
    ends before the run did (the server drops a reader that fell behind, or restarts) is resumed after the last
    event seen (Last-Event-ID)."""
    last_id: str | None = None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as progress:  # fmt: skip
        task = progress.add_task("requested")
        while True:
            for event in client.events(path(name, f"/runs/{run_id}/stream"), last_id):
                last_id = event.id or last_id
                progress.update(task, description=describe(event.json()))
            outcome = client.get(path(name, f"/runs/{run_id}"))
            if outcome["status"] in EXIT_CODES:
                break
            time.sleep(RESUME_AFTER_S)
    colour = {"SUCCESS": "green", "FAILED": "red"}.get(outcome["status"], "yellow")
    console.print(f"[{colour}]{outcome['status']}[/]: {outcome['assetsProcessed']} assets processed "
                  f"({outcome['assetsCreated']} created, {outcome['assetsUpdated']} updated, "
                  f"{outcome['assetsDeleted']} deleted)")  # fmt: skip
    if outcome.get("message"):
        console.print(outcome["message"], markup=False)
    return EXIT_CODES[outcome["status"]]


def describe(event: dict[str, Any]) -> str:
    stage = STAGES.get(event["type"], event["type"].removeprefix("run.").removesuffix(".v1"))
    counts = (event.get("details") or {}).get("counts")
    return f"{stage}: {counts['assets_processed']} assets processed" if counts else stage


def cancel(ctx: typer.Context, name: str) -> None:
    """Ask the integration's active run to stop (it ends CANCELLED within seconds)."""
    api(ctx).call("POST", path(name, "/cancel"))
    console.print(f"cancel of {name}'s active run requested")


@command(runs_app, "list")
def list_runs(ctx: typer.Context, name: str, status: str | None = None, limit: int = 20,
              output: Format = OUTPUT) -> None:  # fmt: skip
    """An integration's runs, newest first."""
    emit(api(ctx).get(path(name, "/runs"), status=status, limit=limit), output, RUN_COLUMNS)


@command(runs_app, "show")
def show(ctx: typer.Context, name: str, run_id: str,
         events: bool = typer.Option(False, "--events", help="The run's timeline."),
         changes: bool = typer.Option(False, "--changes", help="The asset keys it created, updated or deleted."),
         output: Format = OUTPUT) -> None:  # fmt: skip
    """One run; with --events its timeline, with --changes the assets it changed."""
    if events and changes:
        raise typer.BadParameter("--events and --changes each show a listing of their own: give one of them.")
    client = api(ctx)
    if events:
        emit(list(client.pages(path(name, f"/runs/{run_id}/events"), limit=1000)), output, EVENT_COLUMNS)
    elif changes:
        emit(list(client.pages(path(name, f"/runs/{run_id}/changes"), limit=1000)), output, CHANGE_COLUMNS)
    else:
        emit(client.get(path(name, f"/runs/{run_id}")), output)
