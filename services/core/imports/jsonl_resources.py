"""The resources_file of a JSONL import (spec §4): each line checked into a resource, then the whole checked for
parents, implicit parents and cycles, and ordered parents first. The rules are in `jsonl_metadata`'s docstring."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from services.core.imports.model import ENTITY_TYPES, Resource
from services.core.imports.upload_text import checked_key, invalid, name_problem, resource_key, shown, utc_iso

PART = "resources_file"
MAX_SORT_ORDER = 2**31 - 1
# Which kinds a resource's parent may be; columns and charts must have one.
PARENT_KINDS: dict[str, tuple[str, ...]] = {
    "database": (),
    "schema": ("database",),
    "table": ("schema", "database"),
    "column": ("table", "column"),
    "dashboard_group": (),
    "dashboard": ("dashboard_group",),
    "chart": ("dashboard",),
}
PARENT_REQUIRED = frozenset({"column", "chart"})
_COMMON = ("description", "definition", "native_type")
TEXT_ATTRIBUTES = {kind: _COMMON for kind in ENTITY_TYPES} | {
    "column": (*_COMMON, "type"),
    "dashboard": (*_COMMON, "group"),
    "chart": (*_COMMON, "product"),
}


@dataclass(slots=True)
class Record:
    line: int  # of an implicit database or schema: the first table that made it
    kind: str
    databuilder_id: str
    parent: str | None  # the parent's databuilder id
    name: str
    name_field: str  # the field of the line that gave the name: title, databuilder_id, or a table's database/schema
    attributes: dict[str, Any]


class Resources:
    """Collects the checked lines (`add`), then places and orders them (`ordered`). `by_id` includes implicit ones."""

    def __init__(self) -> None:
        self.by_id: dict[str, Record] = {}
        self.unplaced: list[tuple[Record, str, str]] = []  # tables placed by their database and schema names

    def add(self, line: int, item: dict[str, Any]) -> None:
        kind = item.get("entity_type")
        if type(kind) is not str or kind not in PARENT_KINDS:
            raise invalid(PART, line, f"entity_type must be one of {', '.join(ENTITY_TYPES)} (got {shown(kind)})")
        databuilder_id = required_text(PART, line, item, "databuilder_id")
        parent, title = optional_text(line, item, "parent_databuilder_id"), optional_text(line, item, "title")
        attributes: dict[str, Any] = {"databuilder_id": databuilder_id}
        for field in TEXT_ATTRIBUTES[kind]:
            value = item.get(field)
            if value is not None:
                if type(value) is not str:
                    raise invalid(PART, line, f"{field} must be a string (got {shown(value)})")
                attributes[field] = value
        updated_at = item.get("external_updated_at")
        if updated_at is not None:
            attributes["external_updated_at"] = _timestamp(line, updated_at)
        if kind == "column":
            _column_attributes(line, item, attributes)
        name, name_field = (databuilder_id, "databuilder_id") if title is None else (title, "title")
        record = Record(line, kind, databuilder_id, parent, name, name_field, attributes)
        earlier = self.by_id.setdefault(databuilder_id, record)
        if earlier is not record:
            raise invalid(PART, line, f"databuilder_id {shown(databuilder_id)} is also on line {earlier.line}")
        if kind == "table" and parent is None:
            database, schema = optional_text(line, item, "database"), optional_text(line, item, "schema")
            if database is None or schema is None:
                raise invalid(PART, line, "a table needs parent_databuilder_id, or both database and schema")
            self.unplaced.append((record, database, schema))

    def ordered(self) -> list[Resource]:
        """Every resource, implicit ones included, each after its parent (depth first, in file order)."""
        _Placer(self.by_id).place(self.unplaced)
        by_id, children, roots = self.by_id, dict[str, list[Record]](), list[Record]()
        for record in by_id.values():
            parent = record.parent
            if parent is None:
                if record.kind in PARENT_REQUIRED:
                    self.refuse_parent(record)
                roots.append(record)
                continue
            found = by_id.get(parent)
            if found is None or found.kind not in PARENT_KINDS[record.kind]:
                self.refuse_parent(record)
            siblings = children.get(parent)
            if siblings is None:
                children[parent] = [record]
            else:
                siblings.append(record)
        resources: list[Resource] = []
        pending = [(record, "") for record in reversed(roots)]
        while pending:
            record, parent_key = pending.pop()
            key = checked_key(resource_key(record.databuilder_id), PART, record.line)
            problem = name_problem(record.name, parent_key)
            if problem:
                raise invalid(PART, record.line, f"{record.name_field} {problem}")
            resources.append(Resource(key, record.kind, record.name, parent_key, record.attributes))
            below = children.pop(record.databuilder_id, None)
            if below:
                pending.extend((child, key) for child in reversed(below))
        if children:  # never reached from a root: their parents go round in a cycle
            line = min(record.line for records in children.values() for record in records)
            raise invalid(PART, line, "parent_databuilder_id goes round in a cycle back to this resource")
        return resources

    def refuse_parent(self, record: Record) -> NoReturn:
        """Raises what is wrong with the record's parent."""
        allowed = PARENT_KINDS[record.kind]
        if record.parent is None:
            raise invalid(PART, record.line, f"a {record.kind} needs parent_databuilder_id ({_any_of(allowed)})")
        parent = self.by_id.get(record.parent)
        if parent is None:
            problem = f"parent_databuilder_id {shown(record.parent)} is not in this file"
            raise invalid(PART, record.line, f"{problem} (each upload is a full snapshot)")
        rule = f"a {record.kind} has no parent" if not allowed else f"a {record.kind}'s parent is {_any_of(allowed)}"
        raise invalid(PART, record.line, f"{rule}; {shown(record.parent)} is a {parent.kind}")


class _Placer:
    """Finds or makes the database and schema of tables given by names (the rules in `jsonl_metadata`)."""

    def __init__(self, by_id: dict[str, Record]) -> None:
        self.by_id = by_id
        self.titled: dict[tuple[str, str | None, str], list[Record]] = {}  # (kind, parent, title) -> records
        for record in by_id.values():
            if record.kind in ("database", "schema"):
                self.titled.setdefault((record.kind, record.parent, record.name), []).append(record)

    def place(self, tables: list[tuple[Record, str, str]]) -> None:
        for table, database, schema in tables:
            database_id = self.find_or_make(table, "database", None, database, database)
            table.parent = self.find_or_make(table, "schema", database_id, schema, f"{database_id}.{schema}")

    def find_or_make(self, table: Record, kind: str, parent: str | None, title: str, databuilder_id: str) -> str:
        found = self.by_id.get(databuilder_id)
        if found is not None and found.kind == kind:
            return databuilder_id
        titled = self.titled.get((kind, parent, title), [])
        if len(titled) > 1:
            lines = " and ".join(str(record.line) for record in titled[:2])
            problem = f"its {kind} {shown(title)} could be the {kind} on lines {lines}"
            raise invalid(PART, table.line, f"{problem}; give parent_databuilder_id")
        if titled:
            return titled[0].databuilder_id
        if found is not None:
            problem = f"its {kind} {shown(title)} would be made with databuilder_id {shown(databuilder_id)}"
            raise invalid(PART, table.line, f"{problem}, but line {found.line} is a {found.kind} with that id; give "
                          "parent_databuilder_id")  # fmt: skip
        made = Record(table.line, kind, databuilder_id, parent, title, kind, {"databuilder_id": databuilder_id})
        self.by_id[databuilder_id] = made
        self.titled[(kind, parent, title)] = [made]
        return databuilder_id


def _any_of(kinds: tuple[str, ...]) -> str:
    return " or ".join(f"a {kind}" for kind in kinds)


def required_text(part: str, line: int, item: dict[str, Any], field: str, label: str = "") -> str:
    """item[field], a string with more than white space; `label` names the field in the error (default: field)."""
    value = item.get(field)
    if type(value) is str and value and not value.isspace():
        return value
    raise invalid(part, line, f"{label or field} must be a non-empty string (got {shown(value)})")


def optional_text(line: int, item: dict[str, Any], field: str) -> str | None:
    value = item.get(field)
    if value is None or (type(value) is str and value and not value.isspace()):
        return value
    raise invalid(PART, line, f"{field} must be a non-empty string (got {shown(value)})")


def _column_attributes(line: int, item: dict[str, Any], attributes: dict[str, Any]) -> None:
    sort_order, is_pk = item.get("sort_order"), item.get("is_pk")
    if sort_order is not None:
        if type(sort_order) is not int or not 0 <= sort_order <= MAX_SORT_ORDER:
            problem = f"sort_order must be an integer from 0 to {MAX_SORT_ORDER}"
            raise invalid(PART, line, f"{problem} (got {shown(sort_order)})")
        attributes["sort_order"] = sort_order
    if is_pk is not None:
        if type(is_pk) is not bool:
            raise invalid(PART, line, f"is_pk must be true or false (got {shown(is_pk)})")
        attributes["is_pk"] = is_pk


def _timestamp(line: int, value: Any) -> str:
    try:
        if type(value) is not str:
            raise TypeError
        return utc_iso(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        raise invalid(
            PART, line, f"external_updated_at must be an ISO-8601 date and time (got {shown(value)})"
        ) from None
