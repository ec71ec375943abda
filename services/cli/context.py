"""What every command shares: the API client of its invocation (`icp --url ... --api-key ...`), and the
rule that a failure is one readable line on stderr and exit code 3, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from services.cli.client import CliError
from services.cli.output import errors

if TYPE_CHECKING:
    from services.cli.client import ApiClient

F = TypeVar("F", bound=Callable[..., Any])


def api(ctx: typer.Context) -> ApiClient:
    client: ApiClient = ctx.find_root().obj.client()
    return client


def command(app: typer.Typer, name: str | None = None) -> Callable[[F], F]:
    """Register `app.command(name)`, turning a CliError into its message and exit code 3."""

    def register(function: F) -> F:
        @functools.wraps(function)
        def readable(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            except CliError as error:
                errors.print(f"[red]error:[/] {error.message}", highlight=False, soft_wrap=True)
                raise typer.Exit(CliError.exit_code) from None

        app.command(name)(readable)
        return function

    return register
