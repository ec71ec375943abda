"""What every source plug-in shares: its error, and how each kind of asset is built.

The plug-in contract is in core (services.core.sources.spec). The mapping rules, the same for every platform:
- keys are '/'-joined escaped names: `[container/]schema/table[/column]`;
- the level above schemas (PostgreSQL's database, Snowflake's database, BigQuery's project, Trino's catalog) is a
  `container` asset at the root: part of every key below it, navigable, never counted in a run's figures;
- a level that plays the schema's role is a schema asset (a MySQL database, a BigQuery dataset, a Glue database);
- table-level kinds: table, view, materialized_view, external_table, foreign_table; topics are tables too;
- a fingerprint covers an asset's own attributes, never its children and never volatile statistics.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from services.core.objects import escape
from services.core.sources.spec import SourcePlugin, SourceReport

__all__ = [
    "CONTAINER_KIND",
    "NORMALIZED_TYPES",
    "AssetDict",
    "SourceError",
    "SourcePlugin",
    "SourceReport",
    "column_asset",
    "container_asset",
    "foreign_key",
    "key_part",
    "make_asset",
    "normalized_type",
    "schema_asset",
    "selected",
    "table_asset",
]

AssetDict = dict[str, Any]  # the shape of shared.events.Asset, built without per-asset validation cost

CONTAINER_KIND = "database"  # the level above schemas, whatever the platform calls it (its `nativeType`)


class SourceError(Exception):
    """A failure talking to the source, with a message fit for the run's status (no secrets)."""


def make_asset(key: str, kind: str, name: str, parent_key: str | None, attributes: dict[str, Any]) -> AssetDict:
    canonical = json.dumps([kind, name, parent_key, attributes], sort_keys=True, separators=(",", ":"), default=str)
    return {
        "key": key,
        "kind": kind,
        "name": name,
        "parent_key": parent_key,
        "fingerprint": hashlib.sha256(canonical.encode()).hexdigest()[:32],
        "attributes": attributes,
    }


def selected(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether a name (a schema's, a topic's) passes the configured glob patterns: `include` (empty: every name), then
    `exclude`; case-sensitive, as the platforms' names are."""
    if include and not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


def key_part(name: str) -> str:
    """Escape a name for use as one segment of a '/'-separated asset key."""
    return escape(name)


def container_asset(name: str, native_type: str, **attributes: Any) -> AssetDict:
    """The level above schemas (key: its name), at the root."""
    return make_asset(key_part(name), CONTAINER_KIND, name, "", {"nativeType": native_type, **attributes})


def schema_asset(container_key: str | None, name: str, comment: str | None = None, **attributes: Any) -> AssetDict:
    """A schema (or what plays its role), below its container or at the root."""
    key = f"{container_key}/{key_part(name)}" if container_key else key_part(name)
    return make_asset(key, "schema", name, container_key or "", {"comment": comment, **attributes})


def foreign_key(name: str | None, columns: Sequence[str], schema: str | None, table: str,
                referenced: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    return {"name": name, "columns": list(columns),
            "references": {"schema": schema, "table": table, "columns": list(referenced)}}  # fmt: skip


def table_asset(
    parent_key: str, schema: str | None, name: str, kind: str = "table", *, comment: str | None = None,
    primary_key: Sequence[str] = (), unique_keys: Iterable[Sequence[str]] = (),
    foreign_keys: Iterable[dict[str, Any]] = (), definition: str | None = None, **attributes: Any,
) -> AssetDict:  # fmt: skip
    """A table-level asset (table, view, materialized_view, external_table, foreign_table) under `parent_key`
    (its schema's key, or '' for a platform without schemas). `attributes`: the platform's own, never statistics."""
    own: dict[str, Any] = {
        "schema": schema,
        "type": kind,
        "comment": comment,
        "primaryKey": list(primary_key),
        "uniqueKeys": [list(columns) for columns in unique_keys],
        "foreignKeys": list(foreign_keys),
        **attributes,
    }
    if definition is not None:
        own["definition"] = definition
    key = f"{parent_key}/{key_part(name)}" if parent_key else key_part(name)
    return make_asset(key, kind, name, parent_key, own)


def column_asset(
    table_key: str, name: str, data_type: str, ordinal: int, *, nullable: bool | None, comment: str | None = None,
    default: str | None = None, primary_key: bool = False, **attributes: Any,
) -> AssetDict:  # fmt: skip
    """A column: its native type as the platform spells it, and the normalized type every platform shares."""
    return make_asset(f"{table_key}/{key_part(name)}", "column", name, table_key, {
        "dataType": data_type,
        "normalizedType": normalized_type(data_type),
        "nullable": nullable,
        "ordinal": ordinal,
        "comment": comment,
        "default": default,
        "primaryKey": primary_key,
        **attributes,
    })  # fmt: skip


# The normalized types, the same for every platform: what a column holds, whatever the platform calls it.
NORMALIZED_TYPES = (
    "string", "integer", "decimal", "float", "boolean", "date", "time", "timestamp", "timestamp_tz", "interval",
    "binary", "json", "uuid", "array", "struct", "map", "geography", "other",
)  # fmt: skip

# fmt: off
_PREFIX_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("array", "list", "repeated"), "array"),
    (("struct", "row", "record", "object", "tuple", "union"), "struct"),
    (("map",), "map"),
    (("timestamp with time zone", "timestamptz", "timestamp_tz", "timestamp_ltz", "timestamp with local time zone",
      "datetimeoffset"), "timestamp_tz"),
    (("timestamp", "datetime", "timestamp_ntz", "smalldatetime", "datetime2"), "timestamp"),
    (("time", "timetz"), "time"),
    (("date",), "date"),
    (("interval",), "interval"),
    (("bool", "boolean", "bit(1)", "tinyint(1)"), "boolean"),
    (("tinyint", "smallint", "mediumint", "bigint", "hugeint", "ubigint", "uinteger", "usmallint", "utinyint", "int",
      "integer", "int2", "int4", "int8", "int16", "int32", "int64", "long", "short", "byte", "serial", "bigserial",
      "smallserial", "year"), "integer"),
    (("float", "float4", "float8", "float32", "float64", "double", "double precision", "real"), "float"),
    (("decimal", "numeric", "number", "bignumeric", "bigdecimal", "dec", "fixed", "money", "smallmoney"), "decimal"),
    (("char", "character", "varchar", "character varying", "nchar", "nvarchar", "varchar2", "nvarchar2", "text",
      "tinytext", "mediumtext", "longtext", "ntext", "string", "clob", "nclob", "enum", "set", "citext", "name",
      "bpchar", "xml", "inet", "cidr", "macaddr"), "string"),
    (("bytea", "blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary", "bytes", "image", "bit",
      "bit varying", "varbit"), "binary"),
    (("json", "jsonb", "variant"), "json"),
    (("uuid", "uniqueidentifier"), "uuid"),
    (("geography", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
      "geometrycollection"), "geography"),
)
# fmt: on
_RULES = {prefix: normalized for prefixes, normalized in _PREFIX_RULES for prefix in prefixes}
_DECIMAL_SCALE = re.compile(r"^(?:number|numeric|decimal)\s*\(\s*\d+\s*,\s*0\s*\)$")
_BASE = re.compile(r"^[a-z_][a-z0-9_]*(?: (?:precision|varying|with(?:out)? (?:local )?time zone))*")


@lru_cache(maxsize=4096)
def normalized_type(native: str) -> str:
    """One of NORMALIZED_TYPES for a platform's spelling of a type (`varchar(20)`, `NUMBER(38,0)`, `ARRAY<INT64>`,
    `integer[]`, `row(a int)`, `timestamp(3) with time zone`, `tinyint(1) unsigned`)."""
    text = " ".join(native.strip().lower().replace('"', "").split())
    if text.endswith("[]"):
        return "array"
    if _DECIMAL_SCALE.match(text):
        return "integer"  # Snowflake's integers are NUMBER(38,0)
    if text.startswith(("tinyint(1)", "bit(1)")):
        return "boolean"
    without_arguments = re.sub(r"\s*\([^)]*\)", "", text)  # timestamp(3) with time zone -> timestamp with time zone
    base = _BASE.match(without_arguments)
    if base is None:
        return "other"
    words = base.group(0)
    for candidate in (words, words.split(" ")[0]):
        if candidate in _RULES:
            return _RULES[candidate]
    return "other"
