"""What Immuta's two dialects share: the connection object on the wire, connection keys, cursors, renderers.

Every crawled platform is a connection. PostgreSQL's `connection` object is Immuta's own layout (the spec's A18);
every other platform's is built from its source spec: its configuration fields (`hostname` for `host`),
`authenticationType` and its secret fields, by their API names.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, ClassVar, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.api.context import deps, principal
from services.api.params import checked_text
from services.api.problems import BadRequest
from services.core import sources
from services.core.errors import InvalidInput, NotFound
from services.core.integrations import IntegrationFields, NewIntegration
from services.core.model import Integration, Source
from services.core.sources import SourceSpec

# Immuta's names of our platforms (only PostgreSQL, Snowflake and Databricks are confirmed technology strings; the
# others are the product names of Immuta's connection pages). A platform Immuta has no name for shows under ours.
TECHNOLOGY = {
    Source.POSTGRES: "PostgreSQL", Source.MYSQL: "MySQL", Source.MARIADB: "MariaDB", Source.SNOWFLAKE: "Snowflake",
    Source.TRINO: "Trino", Source.BIGQUERY: "BigQuery", Source.GLUE: "Glue",
}  # fmt: skip
WIRE_NAMES = {"host": "hostname"}  # Immuta's names of our configuration fields, where they differ
REDACTED = "[REDACTED]"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
RESERVED_KEYS = frozenset(
    {"data", "connection", "object", "crawl", "search", "settings", "metadata", "permission", "sync", "bulk", "upgrade"}
)
SYSTEM = "system"


def technology_of(source: Source) -> str:
    return TECHNOLOGY.get(source, source.value)


def connection_sources() -> list[Source]:
    """The platforms shown as connections: every crawled one (SPECS is read per call, platforms join it)."""
    return sorted((spec.source for spec in sources.SPECS.values() if spec.crawled), key=lambda source: source.value)


def connection_source_values() -> tuple[str, ...]:
    return tuple(source.value for source in connection_sources())


def source_of_technology(technology: Any) -> Source | None:
    return next((source for source in connection_sources() if technology_of(source) == technology), None)


async def immuta_connection(request: web.Request, key: str) -> Integration:
    """The integration `key` names, if Immuta can show it as a connection (a crawled platform): else 404, the
    first check of every Immuta request after auth."""
    integration = await deps(request).integrations.get(principal(request), key)
    if integration.source not in connection_sources():
        raise NotFound(f"Connection '{key}' was not found: integration '{key}' is a {integration.source.value} "
                       "integration, which Immuta's dialects do not show.")  # fmt: skip
    return integration


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError("connectionKey must be 1-128 characters: only letters, numbers, hyphens and underscores")
    if key.lower() in RESERVED_KEYS:
        raise ValueError(f"connectionKey cannot be a reserved name ({', '.join(sorted(RESERVED_KEYS))}), in any case")
    return key


# ---- the connection object ----------------------------------------------------------------------


class ConnectionBody(BaseModel):
    """A `connection` object as sent, in its platform's layout: what it configures and which secrets it sends."""

    source: ClassVar[Source]

    @abstractmethod
    def configuration(self) -> dict[str, Any]:
        """Our configuration fields among those sent."""

    @abstractmethod
    def secrets_sent(self) -> dict[str, Any]:
        """Our credentials fields among those sent, "[REDACTED]" ones included."""

    def credentials(self) -> dict[str, Any] | None:
        """The secrets sent, or None when none was, or each came back as "[REDACTED]" (unchanged)."""
        sent = {name: value for name, value in self.secrets_sent().items() if value != REDACTED}
        return sent or None

    def changes(self) -> IntegrationFields:
        """This patch as changes of the integration (nothing sent: no change)."""
        if not self.model_fields_set:
            return IntegrationFields()
        return IntegrationFields(configuration=self.configuration(), credentials=self.credentials())

    def replaced_configuration(self, current: dict[str, Any]) -> dict[str, Any]:
        """The configuration after a full replace (v1 PUT) with this body."""
        return self.configuration()

    @classmethod
    @abstractmethod
    def shown(cls, configuration: dict[str, Any], *, with_secrets: bool) -> dict[str, Any]:
        """The object as returned: secrets as "[REDACTED]" (v2) or left out (v1)."""


class ConnectionFields(ConnectionBody):
    """PostgreSQL's `connection` object: Immuta's layout plus our extensions; every field optional here (a patch)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    source: ClassVar[Source] = Source.POSTGRES

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
        sent = {wire: getattr(self, wire) for wire in _POSTGRES_FIELDS if getattr(self, wire) is not None}
        return {("host" if wire == "hostname" else wire): value for wire, value in sent.items()}

    def secrets_sent(self) -> dict[str, Any]:
        return {} if self.password is None else {"password": self.password}

    def replaced_configuration(self, current: dict[str, Any]) -> dict[str, Any]:
        """Immuta's fields are replaced; our extensions the body leaves out keep their values (a client that knows
        only Immuta's fields must not downgrade sslmode or drop schema filters unknowingly)."""
        return {name: current[name] for name in EXTENSIONS if name in current} | self.configuration()

    @classmethod
    def shown(cls, configuration: dict[str, Any], *, with_secrets: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "technology": technology_of(Source.POSTGRES),
            "hostname": configuration.get("host"),
            "port": configuration.get("port"),
            "database": configuration.get("database"),
            "authenticationType": "userPassword",
            "username": configuration.get("username"),
        }
        if with_secrets:
            body["password"] = REDACTED
        body["sslmode"] = configuration.get("sslmode", "prefer")
        for name in EXTENSIONS[1:]:
            if configuration.get(name):
                body[name] = configuration[name]
        return body


_POSTGRES_FIELDS = ("hostname", "port", "database", "username", "sslmode", "includeSchemas", "excludeSchemas")
EXTENSIONS = ("sslmode", "includeSchemas", "excludeSchemas")  # ours, beyond Immuta's connection object


class FullConnection(ConnectionFields):
    """A PostgreSQL connection as registered or fully replaced: everything but the options is required."""

    technology: Literal["PostgreSQL"]
    hostname: str
    port: int
    database: str
    username: str
    password: str


class PlatformConnection(ConnectionBody):
    """The `connection` object of a platform with no layout of Immuta's, built from its spec (`platform_layout`).

    Its fields are typed Any: the spec's models check them when the integration is written (a 400 naming the field).
    """

    model_config = ConfigDict(extra="forbid")
    spec: ClassVar[SourceSpec[Any, Any]]
    # (attribute, our name) of each configuration and secret field; on the wire, the attribute's alias
    config_names: ClassVar[tuple[tuple[str, str], ...]]
    secret_names: ClassVar[tuple[tuple[str, str], ...]]

    def configuration(self) -> dict[str, Any]:
        return {ours: getattr(self, attr) for attr, ours in self.config_names if attr in self.model_fields_set}

    def secrets_sent(self) -> dict[str, Any]:
        return {ours: getattr(self, attr) for attr, ours in self.secret_names if attr in self.model_fields_set}

    def replaced_configuration(self, current: dict[str, Any]) -> dict[str, Any]:
        """The fields the body leaves out (only optional ones can be) keep their values, as PostgreSQL's extensions
        do: a client that omits `sslMode`, `role` or a filter must not downgrade TLS or widen a crawl unknowingly."""
        kept = {ours: current[ours] for attr, ours in self.config_names
                if attr not in self.model_fields_set and ours in current}  # fmt: skip
        return kept | self.configuration()

    @classmethod
    def shown(cls, configuration: dict[str, Any], *, with_secrets: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"technology": technology_of(cls.spec.source)}
        body |= {WIRE_NAMES.get(ours, ours): configuration.get(ours) for _, ours in cls.config_names}
        body["authenticationType"] = authentication_type(cls.spec)
        if with_secrets:
            body |= {ours: REDACTED for _, ours in cls.secret_names}
        return body


def authentication_type(spec: SourceSpec[Any, Any]) -> str:
    """Immuta's `userPassword` where the secret is a password, else the secrets' names; `none` without any."""
    names = sorted(spec.secret_fields)
    return "userPassword" if "password" in names else "+".join(names) or "none"


@cache
def platform_layout(spec: SourceSpec[Any, Any]) -> tuple[type[PlatformConnection], type[PlatformConnection]]:
    """(patch, full) models of a platform's connection object; in the full one what the spec requires is required."""
    config = [(f"config_{i}", field.alias or name, field.is_required())
              for i, (name, field) in enumerate(spec.config_model.model_fields.items())]  # fmt: skip
    secret = [(f"secret_{i}", field.alias or name, field.is_required())
              for i, (name, field) in enumerate(spec.credentials_model.model_fields.items())]  # fmt: skip
    wires = ["technology", "authenticationType"] + [WIRE_NAMES.get(ours, ours) for _, ours, _ in config + secret]
    if len(set(wires)) != len(wires):
        raise ValueError(f"spec '{spec.name}': its fields collide on Immuta's connection object: {sorted(wires)}")
    technology: Any = Literal[technology_of(spec.source)]
    authentication: Any = Literal[authentication_type(spec)]

    def model(full: bool) -> type[PlatformConnection]:
        fields: dict[str, Any] = {
            "technology": (technology, ...) if full else (technology | None, None),
            "authenticationType": (authentication | None, None),
        }
        for attr, ours, required in config + secret:
            wire = WIRE_NAMES.get(ours, ours) if attr.startswith("config_") else ours
            fields[attr] = (Any, Field(alias=wire) if full and required else Field(default=None, alias=wire))
        name = f"{spec.source.value.title()}Connection{'' if full else 'Fields'}"
        built = create_model(name, __base__=PlatformConnection, **fields)
        built.spec, built.source = spec, spec.source
        built.config_names = tuple((attr, ours) for attr, ours, _ in config)
        built.secret_names = tuple((attr, ours) for attr, ours, _ in secret)
        return built

    return model(full=False), model(full=True)


LAYOUTS: dict[Source, tuple[type[ConnectionBody], type[ConnectionBody]]] = {
    Source.POSTGRES: (ConnectionFields, FullConnection),
}


def connection_models(source: Source) -> tuple[type[ConnectionBody], type[ConnectionBody]]:
    """(patch, full) models of a platform's connection object: Immuta's layout, else the one of its spec."""
    return LAYOUTS.get(source) or platform_layout(sources.spec_for(source))


def connection_fields(integration: Integration, *, with_password: bool) -> dict[str, Any]:
    """The connection object of an integration as returned: secrets "[REDACTED]" (`with_password`) or left out."""
    layout = connection_models(integration.source)[0]
    return layout.shown(integration.configuration, with_secrets=with_password)


# ---- request bodies -----------------------------------------------------------------------------


class NewConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connectionKey: str
    connection: ConnectionBody

    @field_validator("connectionKey")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_key(value)

    @field_validator("connection", mode="before")
    @classmethod
    def _in_its_layout(cls, value: Any) -> Any:
        """Validated in the layout of the platform its technology names."""
        if not isinstance(value, dict):
            raise PydanticCustomError("dict_type", "Input should be a connection object")
        source = source_of_technology(value.get("technology"))
        if source is None:
            raise _unknown_technology(value)
        return connection_models(source)[1].model_validate(value)

    def integration(self) -> NewIntegration:
        redacted = [name for name, value in self.connection.secrets_sent().items() if value == REDACTED]
        if redacted:
            field = f"connection.{redacted[0]}"
            raise BadRequest(f"{field}: send the {redacted[0]}; '[REDACTED]' only means unchanged in updates",
                             field=field)  # fmt: skip
        return NewIntegration(
            externalId=self.connectionKey, name=self.connectionKey, source=self.connection.source,
            configuration=self.connection.configuration(), credentials=self.connection.credentials() or {},
        )  # fmt: skip


def _unknown_technology(connection: dict[str, Any]) -> ValidationError:
    if "technology" not in connection:
        error = InitErrorDetails(type="missing", loc=("technology",), input=connection)
    else:
        known = ", ".join(technology_of(source) for source in connection_sources())
        message = PydanticCustomError("technology", "Input should be one of: {known}", {"known": known})
        error = InitErrorDetails(type=message, loc=("technology",), input=connection["technology"])
    return ValidationError.from_exception_data("connection", [error])


class ConnectionPatch(BaseModel):
    """A v2 PATCH body, its `connection` in the connection's layout (`patch_model`)."""

    model_config = ConfigDict(extra="forbid")

    connection: ConnectionBody


class ReplacedConnection(BaseModel):
    """A v1 PUT body, its `connection` complete, in the connection's layout (`replace_model`)."""

    model_config = ConfigDict(extra="forbid")

    connection: ConnectionBody


def patch_model(source: Source) -> type[ConnectionPatch]:
    return _patch_model(connection_models(source)[0])


def replace_model(source: Source) -> type[ReplacedConnection]:
    return _replace_model(connection_models(source)[1])


@cache
def _patch_model(layout: type[ConnectionBody]) -> type[ConnectionPatch]:
    connection = (layout, Field(default_factory=layout))
    return create_model(f"{layout.__name__}Patch", __base__=ConnectionPatch, connection=connection)


@cache
def _replace_model(layout: type[ConnectionBody]) -> type[ReplacedConnection]:
    return create_model(f"{layout.__name__}Replaced", __base__=ReplacedConnection, connection=(layout, ...))


@contextmanager
def immuta_field_names(source: Source) -> Iterator[None]:
    """The domain names a platform's secrets `credentials.<name>` (all of them: `credentials`); Immuta's connection
    object carries them as `connection.<name>`. (The dialect's error style renames the configuration fields.)"""
    try:
        yield
    except InvalidInput as error:
        names = sorted(sources.spec_for(source).secret_fields)
        if not names:
            raise
        detail = error.detail.replace("`credentials`", ", ".join(f"`connection.{name}`" for name in names))
        for name in names:
            detail = detail.replace(f"credentials.{name}", f"connection.{name}")
        if error.field == "credentials":
            error.field = f"connection.{names[0]}"
        elif error.field is not None and error.field.startswith("credentials."):
            error.field = "connection." + error.field.removeprefix("credentials.")
        error.detail, error.args = detail, (detail,)
        raise


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
