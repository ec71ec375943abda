"""Uploaded metadata: the formats a user can upload (Secoda CSV and JSONL imports, dbt Core artifacts), validated
whole by the API before anything is stored, and read again by the connector plug-in that imports them.

Each format module is pure: bytes in, a `Snapshot` (resources + lineage edges) out, or `InvalidUpload` naming the
part, line and field. The API parses to validate; the connector parses the stored bytes again to import.
"""

from services.core.imports.model import (
    ExternalColumn,
    ExternalTable,
    Internal,
    InvalidUpload,
    LineageEdge,
    LineageEnd,
    QueriedTables,
    Resource,
    Snapshot,
)

__all__ = [
    "ExternalColumn",
    "ExternalTable",
    "Internal",
    "InvalidUpload",
    "LineageEdge",
    "LineageEnd",
    "QueriedTables",
    "Resource",
    "Snapshot",
]
