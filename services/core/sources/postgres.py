"""The PostgreSQL source platform: what a user configures, which secret it needs, where it connects."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint, checked_host
from services.core.sources.spec import SourceSpec


class PostgresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(
        min_length=1, max_length=255, description="Host name or IP address of the server, without scheme or port."
    )
    port: int = Field(default=5432, ge=1, le=65535, description="TCP port of the server.")
    database: str = Field(min_length=1, max_length=63, description="The database to crawl.")
    username: str = Field(min_length=1, max_length=63, description="The role to log in as; it needs USAGE on schemas.")
    include_schemas: list[str] = Field(
        default_factory=list, alias="includeSchemas", description="Glob patterns of schemas to crawl; empty: all."
    )
    exclude_schemas: list[str] = Field(
        default_factory=list, alias="excludeSchemas", description="Glob patterns of schemas to skip (after include)."
    )
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = Field(
        default="prefer",
        description="TLS as in libpq; verify-full checks the server certificate against `host`.",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return checked_host(value)


class PostgresCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024, description="Password of `username`.")


def postgres_endpoints(config: PostgresConfig) -> list[Endpoint]:
    return [Endpoint(config.host, config.port)]


POSTGRES = SourceSpec(
    source=Source.POSTGRES,
    config_model=PostgresConfig,
    credentials_model=PostgresCredentials,
    # sslmode too: downgrading it lets anyone on the path read a password the server asks for in clear.
    identity_fields=("host", "port", "database", "username", "sslmode"),
    endpoints=postgres_endpoints,
    plugin="services.connector.sources.postgres:PostgresSource.create",
)
