"""What Immuta's two dialects share: the connection object on the wire, connection keys, cursors, renderers."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.api.context import deps, principal
from services.api.params import checked_text
from services.api.problems import BadRequest
from services.core.errors import NotFound
from services.core.integrations import NewIntegration
from services.core.model import Integration, Source

TECHNOLOGY = {Source.POSTGRES: "PostgreSQL"}
REDACTED = "[REDACTED]"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
RESERVED_KEYS = frozenset(
    {"data", "connection", "object", "crawl", "search", "settings", "metadata", "permission", "sync", "bulk", "upgrade"}
)
SYSTEM = "system"


async def immuta_connection(request: web.Request, key: str) -> Integration:
    """The integration `key` names, if Immuta can show it as a connection (a technology it knows): else 404, the
    first check of every Immuta request after auth."""
    integration = await deps(request).integrations.get(principal(request), key)
    if integration.source not in TECHNOLOGY:
        raise NotFound(f"Connection '{key}' was not found: integration '{key}' is a {integration.source.value} "
                       "integration, which Immuta's dialects do not show.")  # fmt: skip
    return integration


IMMUTA_SOURCES = tuple(source.value for source in TECHNOLOGY)


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError("connectionKey must be 1-128 characters: only letters, numbers, hyphens and underscores")
    if key.lower() in RESERVED_KEYS:
        raise ValueError(f"connectionKey cannot be a reserved name ({', '.join(sorted(RESERVED_KEYS))}), in any case")
    return key


_CONFIGURATION_FIELDS = ("hostname", "port", "database", "username", "sslmode", "includeSchemas", "excludeSchemas")


class ConnectionFields(BaseModel):
    """The `connection` object of both dialects (PostgreSQL); every field optional here (a patch)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    technology: Literal["PostgreSQL"] | None = None
    hostname: str | None = None
    port: int | None = None
    database: str | None = None
    authenticationType: Literal["userPassword"] | None = None
    username: str | None = None
    password: str | None = None
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = None
    includeSchemas: list[str] | None = None
    excludeSchemas: list[str] | None = None

    def configuration(self) -> dict[str, Any]:
        """Our configuration fields among those sent (hostname is our host)."""
        sent = {wire: getattr(self, wire) for wire in _CONFIGURATION_FIELDS if getattr(self, wire) is not None}
        return {("host" if wire == "hostname" else wire): value for wire, value in sent.items()}

    def credentials(self) -> dict[str, Any] | None:
        """The password sent, or None when absent or sent back as "[REDACTED]" (unchanged)."""
        return None if self.password in (None, REDACTED) else {"password": self.password}


class FullConnection(ConnectionFields):
    """A connection as registered or fully replaced: everything but the options is required."""

    technology: Literal["PostgreSQL"]
    hostname: str
    port: int
    database: str
    username: str
    password: str


class ConnectionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: ConnectionFields = Field(default_factory=ConnectionFields)


class NewConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connectionKey: str
    connection: FullConnection

    @field_validator("connectionKey")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_key(value)

    def integration(self) -> NewIntegration:
        if self.connection.password == REDACTED:
            raise BadRequest("connection.password: send the password; '[REDACTED]' only means unchanged in updates",
                             field="connection.password")  # fmt: skip
        return NewIntegration(
            externalId=self.connectionKey, name=self.connectionKey, source=Source.POSTGRES,
            configuration=self.connection.configuration(), credentials=self.connection.credentials(),
        )  # fmt: skip


class ReplacedConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: FullConnection


EXTENSIONS = ("sslmode", "includeSchemas", "excludeSchemas")  # ours, beyond Immuta's connection object


def replaced_configuration(current: Integration, sent: ConnectionFields) -> dict[str, Any]:
    """A full replace (v1 PUT) of Immuta's fields; our extensions the body leaves out keep their values (a
    client that knows only Immuta's fields must not downgrade sslmode or drop schema filters unknowingly)."""
    kept = {name: current.configuration[name] for name in EXTENSIONS if name in current.configuration}
    return kept | sent.configuration()


def connection_fields(integration: Integration, *, with_password: bool) -> dict[str, Any]:
    config = integration.configuration
    body: dict[str, Any] = {
        "technology": TECHNOLOGY.get(integration.source, integration.source.value),
        "hostname": config.get("host"),
        "port": config.get("port"),
        "database": config.get("database"),
        "authenticationType": "userPassword",
        "username": config.get("username"),
    }
    if with_password:
        body["password"] = REDACTED
    body["sslmode"] = config.get("sslmode", "prefer")
    for name in EXTENSIONS[1:]:
        if config.get(name):
            body[name] = config[name]
    return body


def principal_text(principal_id: str | None) -> str:
    return principal_id or SYSTEM


# ---- cursors ------------------------------------------------------------------------------------

CURSOR = "page[cursor]"
LIMIT = "page[limit]"


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The keyset position of a cursor this API issued; anything else is a 400."""
    if raw is None:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        value = None
    if not isinstance(value, dict) or set(value) != set(fields) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"'{CURSOR}' is not a cursor from this API: pass page.nextCursor unchanged.", field=CURSOR)
    return value


def page_limit(request: web.Request, value: Any = None) -> int:
    """`page[limit]` (query, or the body's page.limit): 1..100, default 20."""
    raw = request.query.get(LIMIT) if value is None else value
    if raw is None:
        return 20
    if isinstance(raw, str):
        raw = checked_text(raw, LIMIT, "query parameter")
    if isinstance(raw, bool) or not (
        isinstance(raw, int) or (isinstance(raw, str) and raw.isascii() and raw.isdigit())
    ):
        raise BadRequest(f"'{LIMIT}' must be an integer from 1 to 100, got '{str(raw)[:40]}'", field=LIMIT)
    if len(str(raw)) > 3 or not 1 <= int(raw) <= 100:  # the length first: int() of 4,300+ digits raises
        raise BadRequest(f"'{LIMIT}' must be from 1 to 100, got {str(raw)[:40]}", field=LIMIT)
    return int(raw)


def page_json(next_cursor: str | None) -> dict[str, Any]:
    return {"nextCursor": next_cursor}
