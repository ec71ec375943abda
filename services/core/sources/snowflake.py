"""The Snowflake source platform: what a user configures, which secret it needs, where it connects."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint, checked_host
from services.core.sources.spec import SourceSpec

_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SnowflakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    account: str = Field(
        min_length=1, max_length=255,
        description="Account identifier, e.g. `myorg-myaccount` or `xy12345.eu-west-1`: the server is "
        "`<account>.snowflakecomputing.com` unless `host` is set.",
    )  # fmt: skip
    username: str = Field(min_length=1, max_length=255, description="The user to log in as.")
    warehouse: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="Warehouse that runs the catalog queries; empty: the user's default warehouse.",
    )  # fmt: skip
    role: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="Role to use; empty: the user's default role. The crawl sees what this role may see.",
    )  # fmt: skip
    database: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="The one database to crawl; empty: every database the role sees (except SNOWFLAKE). "
        "Unquoted names are case-insensitive as in Snowflake SQL (analytics = ANALYTICS).",
    )  # fmt: skip
    host: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="Host name of the server instead of the account URL (private link, an emulator), without "
        "scheme or port.",
    )  # fmt: skip
    port: int | None = Field(default=None, ge=1, le=65535, description="TCP port; empty: 443 (https) or 80 (http).")
    protocol: Literal["https", "http"] = Field(
        default="https", description="https, certificate checked against the host name; http only for an emulator."
    )

    @field_validator("account")
    @classmethod
    def _account_identifier(cls, value: str) -> str:
        if not _ACCOUNT.match(value) or value.lower().endswith("snowflakecomputing.com"):
            raise ValueError("account must be the account identifier (e.g. myorg-myaccount), not a URL or host name")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return checked_host(value) if value is not None else None

    @property
    def server_host(self) -> str:
        """The host the connector dials: `host`, else the account URL's (underscores become hyphens, as in
        Snowflake's URLs)."""
        if self.host:
            return self.host
        return f"{self.account.replace('_', '-').lower()}.snowflakecomputing.com"

    @property
    def server_port(self) -> int:
        return self.port or (443 if self.protocol == "https" else 80)


class SnowflakeCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024, description="Password of `username`.")


def snowflake_endpoints(config: SnowflakeConfig) -> list[Endpoint]:
    named_by = "configuration.host" if config.host else "configuration.account"
    return [Endpoint(config.server_host, config.server_port, named_by)]


SNOWFLAKE = SourceSpec(
    source=Source.SNOWFLAKE,
    config_model=SnowflakeConfig,
    credentials_model=SnowflakeCredentials,
    # account/host/port: where the password goes; protocol: http would send it in clear; username/role: as whom
    # the session acts (a role the owner of the password did not choose could read more).
    identity_fields=("account", "username", "host", "port", "protocol", "role"),
    endpoints=snowflake_endpoints,
    plugin="services.connector.sources.snowflake:SnowflakeSource.create",
)
