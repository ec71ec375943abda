"""The BigQuery source platform: the project to crawl, the API endpoint it is reached at, a service-account key."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint
from services.core.sources.spec import SourceSpec

DEFAULT_ENDPOINT = "https://bigquery.googleapis.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"
# A project id, optionally domain-scoped (`example.com:my-project`), as Google Cloud allows them.
_PROJECT_ID = re.compile(r"^(?:[a-z0-9][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_KEY_FIELDS = ("client_email", "private_key")


class BigQueryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    project_id: str = Field(
        alias="projectId", min_length=6, max_length=94,
        description="The Google Cloud project whose datasets are crawled; its query jobs run (and bill) there too.",
    )  # fmt: skip
    endpoint: str | None = Field(
        default=None, max_length=300,
        description="The BigQuery API's base URL (scheme, host, optional port), e.g. a Private Service Connect "
                    f"endpoint or an emulator; default {DEFAULT_ENDPOINT}. Without a service-account key the "
                    "requests are sent unauthenticated (emulators only).",
    )  # fmt: skip

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str) -> str:
        if not _PROJECT_ID.match(value):
            raise ValueError("projectId must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.username \
                or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:  # fmt: skip
            raise ValueError("endpoint must be http(s)://host[:port], without user, path or query")
        if (parts.scheme, parts.hostname, port or 443) == ("https", urlsplit(DEFAULT_ENDPOINT).hostname, 443):
            return None  # the default, written out: the same target, so no change of identity
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def base_url(self) -> str:
        return self.endpoint or DEFAULT_ENDPOINT

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


class BigQueryCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_account_json: str | None = Field(
        default=None, alias="serviceAccountJson", min_length=2, max_length=20_000,
        description="A service account's JSON key file, as Google Cloud issues it. The account needs BigQuery "
                    "Metadata Viewer on the datasets and Job User on the project (the catalog is read by query "
                    "jobs). Required unless `endpoint` names an emulator.",
    )  # fmt: skip

    @field_validator("service_account_json")
    @classmethod
    def _service_account_key(cls, value: str | None) -> str | None:
        if value is not None:
            service_account_info(value)  # the messages name fields, never their values
        return value


def service_account_info(text: str) -> dict[str, Any]:
    """The parsed key file, checked for what a crawl needs; ValueError (without the key's content) if it is not one.

    The key must not name a token endpoint other than Google's: the client library would send a signed grant there.
    """
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("serviceAccountJson must be a service account's JSON key file; this is not JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError('serviceAccountJson must be a service account\'s JSON key file ("type": "service_account")')
    missing = [name for name in _KEY_FIELDS if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise ValueError(f"serviceAccountJson lacks {', '.join(missing)}")
    if "PRIVATE KEY-----" not in info["private_key"]:
        raise ValueError("serviceAccountJson's private_key is not a PEM private key")
    if info.get("token_uri", TOKEN_URI) != TOKEN_URI:
        raise ValueError(f"serviceAccountJson's token_uri must be {TOKEN_URI}")
    if info.get("universe_domain", "googleapis.com") != "googleapis.com":
        raise ValueError("serviceAccountJson's universe_domain must be googleapis.com")
    return info


def bigquery_endpoints(config: BigQueryConfig) -> list[Endpoint]:
    # The only host the plug-in dials: a service-account key signs its own tokens (no token endpoint is called).
    return [Endpoint(config.host, config.port, field="configuration.endpoint")]


BIGQUERY = SourceSpec(
    source=Source.BIGQUERY,
    config_model=BigQueryConfig,
    credentials_model=BigQueryCredentials,
    # The endpoint receives the key's signed tokens; the project decides what they are used for.
    identity_fields=("project_id", "endpoint"),
    endpoints=bigquery_endpoints,
    plugin="services.connector.sources.bigquery:BigQuerySource.create",
)
