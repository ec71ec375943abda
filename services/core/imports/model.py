"""What an upload describes, format-independent: resources (future assets) and lineage edges between them.

A resource's `key` is its asset key within the integration (derived from its identity only, so it and its id stay
the same across uploads); `parent_key` is its parent's key ("" for a top-level resource: its parent is the
integration). Attributes use the names the read side shows (see `RESOURCE_ATTRIBUTES`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from services.core.errors import InvalidInput

# Secoda's resource entity types; dbt tests are `test` resources under the model they test (not listed in the
# catalog, read by failing_tests).
ENTITY_TYPES = ("database", "schema", "table", "column", "dashboard_group", "dashboard", "chart")

# Attribute names a resource may carry (all optional):
#   databuilder_id (str: the identity the user gave, e.g. "db.schema.table"), description, definition (markdown),
#   native_type, external_updated_at (ISO-8601 str), type (a column's data type), sort_order (int), is_pk (bool),
#   group (dashboard), product (chart); tests: status (pass|fail|warn|error|skipped), severity, test_name,
#   column_name, unique_id.
RESOURCE_ATTRIBUTES = (
    "databuilder_id", "description", "definition", "native_type", "external_updated_at", "type", "sort_order",
    "is_pk", "group", "product", "status", "severity", "test_name", "column_name", "unique_id",
)  # fmt: skip


class InvalidUpload(InvalidInput):
    """The upload is refused as a whole (nothing stored): `detail` names the part, line and field."""


class Resource(NamedTuple):
    key: str
    kind: str  # an ENTITY_TYPES value, or "test"
    name: str  # the title
    parent_key: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Internal:
    """A resource of the upload itself, by asset key."""

    key: str


@dataclass(frozen=True)
class ExternalTable:
    """A table that exists in another integration, matched by names (case-insensitive); None matches any."""

    database: str | None
    schema: str | None
    table: str


@dataclass(frozen=True)
class ExternalColumn:
    table: ExternalTable
    column: str


@dataclass(frozen=True)
class QueriedTables:
    """Every table a SQL query reads (`tables_from_query`), each matched like an ExternalTable."""

    tables: tuple[ExternalTable, ...]


LineageEnd = Internal | ExternalTable | ExternalColumn | QueriedTables


class LineageEdge(NamedTuple):
    """Data flows from `source` to `target`."""

    source: LineageEnd
    target: LineageEnd


@dataclass
class Snapshot:
    """A whole upload: everything the integration has. Resources missing from it go stale when it is imported."""

    resources: list[Resource] = field(default_factory=list)
    edges: list[LineageEdge] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
