"""The `icp` command: where the API is and which key to use, then one command group per resource."""

from __future__ import annotations

from dataclasses import dataclass, field

import typer

from services.cli import access, integrations, operate, runs
from services.cli.client import DEFAULT_URL, ApiClient

app = typer.Typer(
    name="icp", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Operate the ingestion control plane: integrations, runs, teams, API keys, system health.",
)  # fmt: skip


@dataclass
class Connection:
    """Built from the global options; the client only once a command calls the API (migrate does not)."""

    url: str
    api_key: str | None
    _client: ApiClient | None = field(default=None, init=False)

    def client(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient(self.url, self.api_key)
        return self._client


API_KEY = typer.Option("", "--api-key", envvar="ICP_API_KEY", help="An API key (x-api-key).", show_default=False)


@app.callback()
def connect(
    ctx: typer.Context,
    url: str = typer.Option(DEFAULT_URL, "--url", envvar="ICP_URL", help="The API's base URL."),
    api_key: str = API_KEY,
) -> None:
    ctx.obj = Connection(url, api_key or None)


app.add_typer(integrations.app, name="integrations", help="List, show, create, apply, test and delete integrations.")
app.add_typer(runs.runs_app, name="runs", help="An integration's runs: history, one run's timeline and changes.")
app.add_typer(access.teams_app, name="teams", help="Teams (organization owners create them).")
app.add_typer(access.keys_app, name="keys", help="API keys (organization owners manage them).")
runs.register(app)  # run, cancel
operate.register(app)  # doctor, migrate, rebuild


def main() -> None:
    app()
