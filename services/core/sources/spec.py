"""One spec per source platform: its input models, what it dials, and how the connector builds its plug-in.

The API validates input against the spec's models and the connector builds the plug-in from the same
spec, so the two can never disagree. The plug-in is named by "module:attribute" and imported only when
a connector first needs it: the API must not load every platform's client library.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from services.core.errors import InvalidInput, field_errors
from services.core.imports.model import LineageEdge
from services.core.model import Source
from services.core.sources.endpoints import CheckedAddresses, Endpoint

ConfigT = TypeVar("ConfigT", bound=BaseModel)
CredentialsT = TypeVar("CredentialsT", bound=BaseModel)
ConfigT_contra = TypeVar("ConfigT_contra", bound=BaseModel, contravariant=True)
CredentialsT_contra = TypeVar("CredentialsT_contra", bound=BaseModel, contravariant=True)

MAX_REPORTED_WARNINGS = 100  # kept per run (recorded on the run as run.warnings_reported.v1); the rest are counted
MAX_WARNING_CHARS = 500
MAX_SUMMARY_WARNINGS = 5  # in the run's message; the run's events have them all


@dataclass
class SourceReport:
    """Non-fatal findings of a crawl, capped: a source with thousands of odd objects must not flood the run."""

    warnings: list[str] = field(default_factory=list)
    dropped: int = 0
    limit: int = MAX_REPORTED_WARNINGS

    def warn(self, message: str) -> None:
        if len(self.warnings) < self.limit:
            self.warnings.append(message[:MAX_WARNING_CHARS])
        else:
            self.dropped += 1

    @property
    def total(self) -> int:
        return len(self.warnings) + self.dropped

    def summary(self) -> str:
        """The first warnings, for the run's message: a person sees at once that there are some."""
        text = "; ".join(self.warnings[:MAX_SUMMARY_WARNINGS])
        more = self.total - min(len(self.warnings), MAX_SUMMARY_WARNINGS)
        return f"{text}; and {more} more (in the run's events)" if more else text


class SourcePlugin(Protocol):
    """A connected source: test it, crawl it (batches of assets), read its lineage, close it. Built per run."""

    report: SourceReport

    async def test_connection(self) -> None: ...

    def crawl(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of assets (shared.events.Asset-shaped dicts), each key once in all of a crawl."""
        ...

    def lineage(self) -> list[LineageEdge]:
        """The lineage the source asserts, known once `crawl` is exhausted (ends not yet resolved to assets)."""
        ...

    async def close(self) -> None: ...


class PluginFactory(Protocol[ConfigT_contra, CredentialsT_contra]):
    def __call__(
        self, config: ConfigT_contra, credentials: CredentialsT_contra, addresses: CheckedAddresses
    ) -> SourcePlugin: ...


@dataclass(frozen=True)
class SourceSpec(Generic[ConfigT, CredentialsT]):
    """A source platform. Every credentials field is secret: encrypted at rest, write-only, redacted."""

    source: Source
    config_model: type[ConfigT]
    credentials_model: type[CredentialsT]
    # Configuration fields that decide where or as whom the credentials are sent: changing one of them
    # without sending the credentials again would hand the stored ones to a server of the editor's choosing.
    identity_fields: tuple[str, ...]
    endpoints: Callable[[ConfigT], list[Endpoint]]  # every host/port the plug-in will connect to
    # "package.module:Factory" or "package.module:Class.create", a PluginFactory; None: the platform is not
    # crawled, its runs come from uploads (Secoda's custom and dbt Core integrations).
    plugin: str | None
    # A rule across configuration and credentials (each model checks its own fields): the first mismatch as
    # (field, message), which the API answers with a 422 and a plug-in built from stored values reports as the
    # run's failure; None when they agree.
    mismatch: Callable[[ConfigT, CredentialsT], tuple[str, str] | None] = lambda _config, _credentials: None

    def __post_init__(self) -> None:
        unknown = set(self.identity_fields) - set(self.config_model.model_fields)
        if unknown or (self.plugin is not None and ":" not in self.plugin):
            raise ValueError(f"spec '{self.name}': unknown identity fields {sorted(unknown)} or bad plugin path")

    @property
    def name(self) -> str:
        return self.source.value

    @property
    def secret_fields(self) -> frozenset[str]:
        return frozenset(_alias(self.credentials_model, name) for name in self.credentials_model.model_fields)

    def parse_config(self, value: dict[str, Any]) -> ConfigT:
        return _parse(self.config_model, value, "configuration")

    def parse_credentials(self, value: dict[str, Any]) -> CredentialsT:
        return _parse(self.credentials_model, value, "credentials")

    def check_together(self, config: ConfigT, credentials: CredentialsT) -> None:
        """InvalidInput unless `config` and `credentials` agree (see `mismatch`)."""
        found = self.mismatch(config, credentials)
        if found is not None:
            field_name, message = found
            raise InvalidInput(f"{field_name}: {message}", field=field_name)

    def changed_identity(self, before: dict[str, Any], after: ConfigT) -> list[str]:
        """Identity fields (as `configuration.<name>`) that differ between a stored configuration and `after`."""
        try:
            old = self.config_model.model_validate(before)
        except ValidationError:  # stored under an older model: nothing can be shown unchanged
            changed = list(self.identity_fields)
        else:
            changed = [name for name in self.identity_fields if getattr(old, name) != getattr(after, name)]
        return [f"configuration.{_alias(self.config_model, name)}" for name in changed]

    @property
    def credentials_optional(self) -> bool:
        """Whether the platform can be used with no secret at all (Kafka without SASL, Trino over plain HTTP)."""
        return not any(f.is_required() for f in self.credentials_model.model_fields.values())

    @property
    def crawled(self) -> bool:
        return self.plugin is not None

    def plugin_factory(self) -> PluginFactory[ConfigT, CredentialsT]:
        if self.plugin is None:
            raise ValueError(f"source '{self.name}' is not crawled: its runs come from uploads")
        module, _, attributes = self.plugin.partition(":")
        target: Any = importlib.import_module(module)
        for attribute in attributes.split("."):
            target = getattr(target, attribute)
        factory: PluginFactory[ConfigT, CredentialsT] = target
        return factory


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], value: dict[str, Any], prefix: str) -> ModelT:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        field_name, message = field_errors(error, prefix)[0]
        raise InvalidInput(f"{field_name}: {message}", field=field_name) from None


def _alias(model: type[BaseModel], name: str) -> str:
    """A field's name on the wire (the API speaks camelCase aliases)."""
    return model.model_fields[name].alias or name
