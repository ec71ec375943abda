"""Source plug-ins by platform. Adding a platform = one module here + one REGISTRY entry."""

from __future__ import annotations

from services.connector.sources.base import SourceFactory
from services.connector.sources.postgres import PostgresSource
from services.core.model import Source

REGISTRY: dict[Source, SourceFactory] = {
    Source.POSTGRES: PostgresSource.create,
}
