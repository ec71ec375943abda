"""`icp teams list|create` and `icp keys list|create|delete` (what the admin API allows)."""

from __future__ import annotations

import typer

from services.cli.context import api, command
from services.cli.output import OUTPUT, Format, console, emit

teams_app = typer.Typer(no_args_is_help=True)
keys_app = typer.Typer(no_args_is_help=True)
TEAM = typer.Option([], "--team", help="TEAM=PERMISSION[,PERMISSION] (e.g. data-eng=INGESTION_VIEW); repeatable")
OWNER = typer.Option(False, "--organization-owner", help="A key that sees and manages everything.")


@command(teams_app, "list")
def list_teams(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """The teams the key may see."""
    emit(api(ctx).get("/api/teams"), output, ("externalId", "name", "createdAt"))


@command(teams_app, "create")
def create_team(ctx: typer.Context, external_id: str, name: str, output: Format = OUTPUT) -> None:
    """Create a team."""
    emit(api(ctx).call("POST", "/api/teams", {"externalId": external_id, "name": name}), output)


@command(keys_app, "list")
def list_keys(ctx: typer.Context, output: Format = OUTPUT) -> None:
    """Every API key (never their secrets)."""
    emit(api(ctx).get("/api/api-keys"), output, ("id", "name", "organizationOwner", "teams", "revokedAt"))


@command(keys_app, "create")
def create_key(
    ctx: typer.Context,
    name: str,
    team: list[str] = TEAM,
    owner: bool = OWNER,
    output: Format = OUTPUT,
) -> None:
    """Create an API key; its secret is shown once."""
    grants = []
    for given in team:
        team_id, _, permissions = given.partition("=")
        if not team_id or not permissions:
            raise typer.BadParameter(f"{given!r}: expected TEAM=PERMISSION[,PERMISSION]", param_hint="--team")
        grants.append({"teamExternalId": team_id, "permissions": permissions.split(",")})
    body = {"name": name, "teams": grants, "organizationOwner": owner}
    emit(api(ctx).call("POST", "/api/api-keys", body), output)


@command(keys_app, "delete")
def delete_key(ctx: typer.Context, key_id: str) -> None:
    """Revoke an API key."""
    api(ctx).call("DELETE", f"/api/api-keys/{key_id}")
    console.print(f"API key {key_id} revoked")
