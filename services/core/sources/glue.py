"""The AWS Glue Data Catalog source platform: what a user configures, which secret it needs, where it connects."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint, is_link_local_literal
from services.core.sources.spec import SourceSpec

# The commercial, China and GovCloud partitions: their Glue endpoints are glue.<region>.amazonaws.com[.cn].
REGION = re.compile(r"^[a-z]{2}(?:-gov)?-[a-z]+-\d{1,2}$")
ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")
# An account id, or a catalog below it (account:catalog[/sub-catalog], for federated and S3 Tables catalogs).
CATALOG_ID = re.compile(r"^\d{12}(?::[A-Za-z0-9_.\-]{1,255}(?:/[A-Za-z0-9_.\-]{1,255})*)?$")


class GlueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    region: str = Field(description="AWS region of the Data Catalog, e.g. `eu-west-1`.")
    endpoint_url: str | None = Field(
        default=None,
        alias="endpointUrl",
        description="Glue API endpoint instead of `https://glue.<region>.amazonaws.com` (a VPC endpoint, an "
        "emulator): `https://host[:port]`; plain `http://` only to a loopback host.",
    )
    catalog_id: str | None = Field(
        default=None,
        alias="catalogId",
        description="The catalog to crawl: an AWS account id (12 digits); default: the access key's account.",
    )
    access_key_id: str = Field(
        alias="accessKeyId",
        description="Access key id of an IAM user or role allowed glue:GetDatabases and glue:GetTables.",
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION.match(value):
            raise ValueError("region must be an AWS region code such as 'us-east-1' or 'eu-central-1'")
        return value

    @field_validator("access_key_id")
    @classmethod
    def _access_key_id(cls, value: str) -> str:
        if not ACCESS_KEY_ID.match(value):
            raise ValueError("accessKeyId must be an AWS access key id (upper-case letters and digits, e.g. AKIA...)")
        return value

    @field_validator("catalog_id")
    @classmethod
    def _catalog_id(cls, value: str | None) -> str | None:
        if value is not None and not CATALOG_ID.match(value):
            raise ValueError("catalogId must be a 12-digit AWS account id (or account:catalog)")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            raise ValueError("endpointUrl has an invalid port") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("endpointUrl must be an https:// URL with a host")
        if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
            raise ValueError("endpointUrl must be scheme://host[:port], without user, path, query or fragment")
        if port == 0:
            raise ValueError("endpointUrl has an invalid port")
        if is_link_local_literal(parts.hostname):
            raise ValueError(f"'{parts.hostname}' is a link-local address: the source never connects there")
        # The request is signed, not encrypted: over plain HTTP anyone on the path reads the catalog and can
        # answer in the server's place. Loopback traffic never leaves the machine (an emulator, a local tunnel),
        # and the SSRF policy allows loopback only where private sources are allowed (development and tests).
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("endpointUrl must use https:// (plain http:// only to a loopback host)")
        return value

    @property
    def endpoint(self) -> tuple[str, str, int]:
        """The scheme, host and port of the Glue API this configuration names."""
        if self.endpoint_url is None:
            suffix = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
            return "https", f"glue.{self.region}.{suffix}", 443
        parts = urlsplit(self.endpoint_url)
        assert parts.hostname is not None  # checked by the validator
        return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def url(self) -> str:
        """The endpoint as a URL for the client: always explicit, so the client never derives another host."""
        scheme, host, port = self.endpoint
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GlueCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    secret_access_key: str = Field(
        min_length=1, max_length=1024, alias="secretAccessKey", description="Secret access key of `accessKeyId`."
    )


def glue_endpoints(config: GlueConfig) -> list[Endpoint]:
    _, host, port = config.endpoint
    return [Endpoint(host, port, field="configuration.endpointUrl" if config.endpoint_url else "configuration.region")]


GLUE = SourceSpec(
    source=Source.GLUE,
    config_model=GlueConfig,
    credentials_model=GlueCredentials,
    identity_fields=("region", "endpoint_url", "catalog_id", "access_key_id"),
    endpoints=glue_endpoints,
    plugin="services.connector.sources.glue:GlueSource.create",
)
