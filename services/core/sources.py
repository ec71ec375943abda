"""What each source platform needs: its configuration and credentials models, and the host policy.

Connector plug-ins (services.connector.sources) implement crawling; this module is what the API
validates user input against, so a bad configuration is refused before anything is written.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.errors import InvalidInput
from services.core.model import Source


class PostgresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=63)
    username: str = Field(min_length=1, max_length=63)
    include_schemas: list[str] = Field(default_factory=list, alias="includeSchemas")
    exclude_schemas: list[str] = Field(default_factory=list, alias="excludeSchemas")
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"

    @field_validator("host")
    @classmethod
    def _no_scheme(cls, value: str) -> str:
        if "/" in value or " " in value:
            raise ValueError("host must be a host name or IP address, without scheme, path or spaces")
        return value


class PostgresCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)


CONFIG_MODELS: dict[Source, tuple[type[BaseModel], type[BaseModel]]] = {
    Source.POSTGRES: (PostgresConfig, PostgresCredentials),
}


def supported_sources() -> list[str]:
    return sorted(s.value for s in CONFIG_MODELS)


def config_models(source: Source) -> tuple[type[BaseModel], type[BaseModel]]:
    try:
        return CONFIG_MODELS[source]
    except KeyError:
        raise InvalidInput(
            f"source '{source.value}' has no connector yet; supported sources: {', '.join(supported_sources())}",
            field="source",
        ) from None


async def check_host_allowed(host: str, port: int, allow_private: bool) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or reserved addresses (SSRF guard)."""
    if allow_private:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidInput(f"host '{host}' does not resolve", field="configuration.host") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidInput(
                f"host '{host}' resolves to {address}, a non-public address; this installation only "
                "allows public source hosts (ALLOW_PRIVATE_SOURCES=false)",
                field="configuration.host",
            )
