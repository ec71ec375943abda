"""`icp integrations list|get|create|apply|test|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
import yaml

from services.cli.client import ApiClient, CliError
from services.cli.context import api, command
from services.cli.output import OUTPUT, Format, console, emit

app = typer.Typer(no_args_is_help=True)
COLUMNS = ("externalId", "name", "source", "enabled", "assetOwnerTeamExternalId")
FILE = typer.Option(..., "--file", "-f", help="The integration as YAML or JSON (as POST /api/integrations takes it).")


def path(name: str, tail: str = "") -> str:
    return f"/api/integrations/{quote(name, safe='')}{tail}"


@command(app, "list")
def list_integrations(ctx: typer.Context, source: str | None = None, output: Format = OUTPUT) -> None:
    """Every integration the key may see."""
    emit(api(ctx).get("/api/integrations", source=source), output, COLUMNS)


@command(app)
def get(ctx: typer.Context, name: str, output: Format = OUTPUT) -> None:
    """One integration, with its configuration."""
    emit(api(ctx).get(path(name)), output)


@command(app)
def create(ctx: typer.Context, file: Path = FILE, output: Format = OUTPUT) -> None:
    """Create an integration (409 if its externalId exists: use apply to update)."""
    emit(api(ctx).call("POST", "/api/integrations", read_spec(file)), output)


@command(app)
def apply(ctx: typer.Context, file: Path = FILE) -> None:
    """Create the integration, or update the one with its externalId: applying a file twice changes nothing."""
    spec = read_spec(file)
    outcome = apply_spec(api(ctx), spec)
    console.print(f"integration {spec['externalId']} {outcome}")


def apply_spec(client: ApiClient, spec: dict[str, Any]) -> str:
    name = spec.get("externalId")
    if not isinstance(name, str):
        raise CliError("the file needs an externalId (the integration's name)")
    found = integration_or_none(client, name)
    if found is None:
        client.call("POST", "/api/integrations", spec)
        return "created"
    if "source" in spec and spec["source"] != found["source"]:
        raise CliError(f"{name} is a {found['source']} integration; its source cannot change to {spec['source']}")
    changes = {k: v for k, v in spec.items() if k not in ("externalId", "source")}
    client.call("PATCH", path(name), changes)
    return "updated"


def integration_or_none(client: ApiClient, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.get(path(name))
    except CliError as error:
        if error.status == 404:  # absent (or another team's: then creating it answers 409, which says so)
            return None
        raise
    return found


@command(app)
def test(ctx: typer.Context, name: str, output: Format = OUTPUT) -> None:
    """Test a saved integration's connection through a connector; exit 1 when it FAILED."""
    result = api(ctx).call("POST", path(name, "/test"))
    emit(result, output)
    if result["status"] != "PASSED":
        raise typer.Exit(1)


@command(app)
def delete(ctx: typer.Context, name: str) -> None:
    """Delete an integration (refused while it runs)."""
    api(ctx).call("DELETE", path(name))
    console.print(f"integration {name} deleted")


def read_spec(file: Path) -> dict[str, Any]:
    try:
        spec = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise CliError(f"cannot read {file}: {error}") from None
    if not isinstance(spec, dict):
        raise CliError(f"{file} holds no integration (a YAML or JSON object)")
    return spec
