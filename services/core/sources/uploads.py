"""Platforms synced by uploads rather than crawled: Secoda's custom integrations (CSV/JSONL metadata files) and dbt
Core (manifest and run results). They have nothing to configure and no secrets; nothing is dialled."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from services.core.model import Source
from services.core.sources.endpoints import Endpoint
from services.core.sources.spec import SourceSpec


class NothingToConfigure(BaseModel):
    model_config = ConfigDict(extra="forbid")


def no_endpoints(_: NothingToConfigure) -> list[Endpoint]:
    return []


def uploaded(source: Source) -> SourceSpec[NothingToConfigure, NothingToConfigure]:
    return SourceSpec(
        source=source, config_model=NothingToConfigure, credentials_model=NothingToConfigure, identity_fields=(),
        endpoints=no_endpoints, plugin=None,
    )  # fmt: skip


CUSTOM = uploaded(Source.CUSTOM)
DBT_CORE = uploaded(Source.DBT_CORE)
