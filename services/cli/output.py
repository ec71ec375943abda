"""How commands print what they got: a rich table (default), JSON or YAML (-o json|yaml, for scripts)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

console = Console()
UUID_CHARS = 36
errors = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OUTPUT = typer.Option(Format.table, "--output", "-o", help="table, json or yaml")


def emit(data: Any, fmt: Format, columns: Sequence[str] = ()) -> None:
    """Print `data` (a list of objects, or one object) in the chosen format; a table shows `columns`."""
    if fmt is Format.json:
        # Plain print: rich would wrap long lines, and the JSON must parse.
        print(json.dumps(data, indent=2, default=str))
    elif fmt is Format.yaml:
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    elif isinstance(data, list):
        table = Table()
        for column in columns:
            # An id is what the next command takes: shown whole, never cut to fit the terminal.
            whole = column.lower().endswith("id")
            table.add_column(column, no_wrap=whole, min_width=UUID_CHARS if whole else None)
        for item in data:
            table.add_row(*(cell(item.get(column)) for column in columns))
        console.print(table)
    else:
        table = Table("field", "value", show_header=False)
        for key, value in data.items():
            table.add_row(key, cell(value))
        console.print(table)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)
