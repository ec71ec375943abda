"""Source platforms: one spec each (see spec.py). Adding a platform = one spec module + one SPECS entry."""

from __future__ import annotations

from typing import Any

from services.core.errors import InvalidInput
from services.core.model import Source
from services.core.sources.bigquery import BIGQUERY
from services.core.sources.endpoints import (
    CheckedAddresses,
    Endpoint,
    Resolver,
    SystemResolver,
    check_endpoints,
    private_sources_default,
)
from services.core.sources.files import DUCKDB, SQLITE
from services.core.sources.glue import GLUE
from services.core.sources.kafka import KAFKA
from services.core.sources.mysql import MARIADB, MYSQL
from services.core.sources.postgres import POSTGRES
from services.core.sources.snowflake import SNOWFLAKE
from services.core.sources.spec import SourcePlugin, SourceReport, SourceSpec
from services.core.sources.trino import TRINO
from services.core.sources.uploads import CUSTOM, DBT_CORE

__all__ = [
    "SPECS",
    "CheckedAddresses",
    "Endpoint",
    "Resolver",
    "SourcePlugin",
    "SourceReport",
    "SourceSpec",
    "SystemResolver",
    "check_endpoints",
    "private_sources_default",
    "spec_for",
    "supported_sources",
]

SPECS: dict[Source, SourceSpec[Any, Any]] = {
    spec.source: spec
    for spec in (POSTGRES, MYSQL, MARIADB, SNOWFLAKE, TRINO, BIGQUERY, GLUE, KAFKA, SQLITE, DUCKDB, CUSTOM, DBT_CORE)
}


def supported_sources() -> list[str]:
    return sorted(s.value for s in SPECS)


def spec_for(source: Source) -> SourceSpec[Any, Any]:
    try:
        return SPECS[source]
    except KeyError:
        raise InvalidInput(
            f"source '{source.value}' is not supported yet; supported sources: {', '.join(supported_sources())}",
            field="source",
        ) from None
