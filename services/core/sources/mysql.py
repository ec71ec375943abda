"""The MySQL and MariaDB source platforms: one configuration, one secret, one plug-in, two names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint, checked_host
from services.core.sources.spec import SourceSpec

SslMode = Literal["disabled", "preferred", "required", "verify_ca", "verify_identity"]


class MySQLConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(
        min_length=1, max_length=255, description="Host name or IP address of the server, without scheme or port."
    )
    port: int = Field(default=3306, ge=1, le=65535, description="TCP port of the server.")
    database: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="Crawl only this database; empty: every database the user can see (never the system ones).",
    )  # fmt: skip
    username: str = Field(
        min_length=1, max_length=80, description="The user to log in as; it sees the objects it has a privilege on."
    )
    include_schemas: list[str] = Field(
        default_factory=list, alias="includeSchemas", description="Glob patterns of databases to crawl; empty: all."
    )
    exclude_schemas: list[str] = Field(
        default_factory=list, alias="excludeSchemas", description="Glob patterns of databases to skip (after include)."
    )
    ssl_mode: SslMode = Field(
        default="preferred", alias="sslMode",
        description="TLS as the mysql client's --ssl-mode: preferred uses it when the server offers it; verify_ca "
        "checks the certificate, verify_identity also that it names `host`.",
    )  # fmt: skip

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return checked_host(value)


class MySQLCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024, description="Password of `username`.")


def mysql_endpoints(config: MySQLConfig) -> list[Endpoint]:
    return [Endpoint(config.host, config.port)]


# sslMode too: downgrading it lets anyone on the path strip TLS from a login the server would otherwise protect.
_IDENTITY = ("host", "port", "username", "database", "ssl_mode")
_PLUGIN = "services.connector.sources.mysql:MySQLSource.create"

MYSQL = SourceSpec(
    source=Source.MYSQL, config_model=MySQLConfig, credentials_model=MySQLCredentials,
    identity_fields=_IDENTITY, endpoints=mysql_endpoints, plugin=_PLUGIN,
)  # fmt: skip
MARIADB = SourceSpec(
    source=Source.MARIADB, config_model=MySQLConfig, credentials_model=MySQLCredentials,
    identity_fields=_IDENTITY, endpoints=mysql_endpoints, plugin=_PLUGIN,
)  # fmt: skip
