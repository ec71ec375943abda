"""Database files as sources (SQLite, DuckDB): only files under the directory FILE_SOURCES_ROOT names.

A path is a way to read any file the connector can read, so the installation decides where they may be: the
real path (symlinks followed) must lie under FILE_SOURCES_ROOT, checked when the configuration is validated and
again when the plug-in opens the file (a symlink may point elsewhere by then). Unset, these platforms are off.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint
from services.core.sources.spec import SourceSpec
from services.core.sources.uploads import NothingToConfigure

FILE_SOURCES_ROOT = "FILE_SOURCES_ROOT"


def database_file(path: str) -> str:
    """The real path of `path` (a relative one is relative to FILE_SOURCES_ROOT), or ValueError saying why it may
    not be read. Reads the environment on every call: the rule is the one in force now."""
    root = os.environ.get(FILE_SOURCES_ROOT, "")
    if not root:
        raise ValueError(
            f"{FILE_SOURCES_ROOT} is not set on this installation, so it reads no database files (SQLite, DuckDB); "
            "its administrator can set it to the directory such files may be read from"
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, path))  # an absolute `path` replaces the root here
    if real == real_root or os.path.commonpath([real_root, real]) != real_root:
        raise ValueError(f"path must be a file under {real_root} ({FILE_SOURCES_ROOT}), symlinks followed")
    return real


def existing_database_file(path: str, platform: str) -> str:
    """The file a run of `platform` (SQLite, DuckDB) opens: `database_file(path)`, which must exist; ValueError,
    fit for the run's message, if it may not be read or is not there."""
    try:
        real = database_file(path)  # the rule in force now; a symlink may point elsewhere by now
    except ValueError as refused:
        raise ValueError(f"Refused to open '{path}': {refused}") from None
    if not os.path.isfile(real):
        raise ValueError(f"No {platform} database file at {real} (configured as '{path}')")
    return real


class DatabaseFileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1, max_length=4096,
        description=f"The database file: an absolute path, or one relative to {FILE_SOURCES_ROOT}. Its real path "
        f"(symlinks followed) must lie under the directory {FILE_SOURCES_ROOT} names. Opened read-only.",
    )  # fmt: skip

    @field_validator("path")
    @classmethod
    def _under_root(cls, value: str) -> str:
        database_file(value)  # kept as written: the plug-in resolves it again when it opens the file
        return value


def no_endpoints(_: DatabaseFileConfig) -> list[Endpoint]:
    return []  # a local file: nothing is dialled


def database_file_spec(source: Source, plugin: str) -> SourceSpec[DatabaseFileConfig, NothingToConfigure]:
    return SourceSpec(
        source=source, config_model=DatabaseFileConfig, credentials_model=NothingToConfigure,
        identity_fields=("path",), endpoints=no_endpoints, plugin=plugin,
    )  # fmt: skip


SQLITE = database_file_spec(Source.SQLITE, "services.connector.sources.sqlite:SqliteSource.create")
DUCKDB = database_file_spec(Source.DUCKDB, "services.connector.sources.duckdb:DuckdbSource.create")
