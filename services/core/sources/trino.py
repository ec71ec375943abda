"""The Trino source platform: what a user configures, which secret it needs, where it connects."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint, checked_host
from services.core.sources.spec import SourceSpec


class TrinoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(
        min_length=1, max_length=255,
        description="Host name or IP address of the coordinator, without scheme or port.",
    )  # fmt: skip
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP(S) port of the coordinator.")
    https: bool = Field(
        default=False,
        description="Connect over HTTPS, verifying the certificate against `host` (the system's CA bundle, or "
        "REQUESTS_CA_BUNDLE's). Required to send a password.",
    )
    username: str = Field(
        min_length=1, max_length=255,
        description="The user to query as; it needs to see the catalogs' information_schema and system.jdbc.",
    )  # fmt: skip
    catalog: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="The one catalog to crawl; empty: every catalog except `system`.",
    )  # fmt: skip

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return checked_host(value)

    @field_validator("catalog")
    @classmethod
    def _catalog(cls, value: str | None) -> str | None:
        # Trino folds catalog names to lower case; system.metadata.catalogs lists them so.
        return value.lower() if value is not None else None


class TrinoCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="Password of `username`, for a coordinator with password authentication (HTTPS only); "
        "empty: no authentication, the user is only named.",
    )  # fmt: skip


def trino_endpoints(config: TrinoConfig) -> list[Endpoint]:
    return [Endpoint(config.host, config.port)]


def password_over_https(config: TrinoConfig, credentials: TrinoCredentials) -> tuple[str, str] | None:
    if credentials.password is not None and not config.https:
        return ("credentials.password", "a password is only sent over HTTPS (Trino accepts password authentication "
                "only there); set configuration.https to true, or remove the password")  # fmt: skip
    return None


TRINO = SourceSpec(
    source=Source.TRINO,
    config_model=TrinoConfig,
    credentials_model=TrinoCredentials,
    # https too: turning it off would send the stored password in clear (the plug-in refuses that anyway).
    identity_fields=("host", "port", "https", "username", "catalog"),
    endpoints=trino_endpoints,
    plugin="services.connector.sources.trino:TrinoSource.create",
    mismatch=password_over_https,
)
