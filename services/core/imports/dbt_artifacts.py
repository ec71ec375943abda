"""dbt Core artifacts (manifest.json and run_results.json of one `dbt build`) read as a Snapshot.

Models, seeds, snapshots and sources become table resources with their documented columns, `depends_on` becomes
lineage between them, and each test with a result becomes a `test` resource under the model it tests. Keys follow
the rule of every format, `resource_key(databuilder_id)`: a table's databuilder id is its `relation_name` (else its
unique id), a column's "<its table's databuilder id>.<column name>"; a test is keyed by its unique id. A resource
whose key another already has is skipped with a warning.

Artifacts are large and loosely shaped (every field of a node may be missing or null), so everything is read
defensively: the only errors are the ones that make the upload meaningless or that the import could never store,
and they name the part and the node ("manifest nodes['model.p.m'].description: ..."): a unique id, or any string
that a resource would carry (its name and attributes; keys are made of these), that is no storable text (the walk
JSONL lines go through), and a name or key too long for the assets indexes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

from services.core.imports.model import Internal, InvalidUpload, LineageEdge, Resource, Snapshot
from services.core.imports.upload_text import (
    json_may_hold_unstorable_text,
    key_problem,
    name_problem,
    resource_key,
    text_problem,
    text_problem_in,
)

# Each part, the marker its metadata.dbt_schema_version URL holds, and the file dbt writes it to.
_PARTS = {"manifest": ("/manifest/", "manifest.json"), "run_results": ("/run-results/", "run_results.json")}
_TABLE_NODES = ("model", "seed", "snapshot")
_TEST_STATUSES = ("pass", "fail", "warn", "error", "skipped")
_WARNED_IDS = 5  # a warning names this many unique ids, then counts the rest
# How the manifest spells the attributes a resource carries, where it differs (errors name the manifest's field).
_MANIFEST_FIELDS = {"databuilder_id": "relation_name", "native_type": "config.materialized", "type": "data_type",
                    "severity": "config.severity", "test_name": "test_metadata.name"}  # fmt: skip


def parse(parts: Mapping[str, bytes]) -> Snapshot:
    manifest, run_results = _artifact(parts, "manifest"), _artifact(parts, "run_results")
    nodes, sources = _section(manifest, "nodes", required=True), _section(manifest, "sources")
    # `dbt build` runs unit tests too: their results name the manifest's `unit_tests`, not its nodes.
    unit_tests = _section(manifest, "unit_tests")
    runnable = nodes | unit_tests
    statuses = _statuses(run_results, runnable, sources)
    collected = _Collected()
    tables = _tables(collected, nodes, sources)
    for unique_id, node in nodes.items():
        if unique_id in tables:
            collected.snapshot.edges += [LineageEdge(Internal(tables[d]), Internal(tables[unique_id]))
                                     for d in _depends_on(node) if d in tables]  # fmt: skip
    _tests(collected, runnable, unit_tests, statuses, tables, sources)
    collected.check(texts=json_may_hold_unstorable_text(parts["manifest"]))
    _warn(collected.snapshot, "dbt resources skipped: their identity is already another resource's", collected.skipped)
    return collected.snapshot


class _Collected:
    """The snapshot being read, with where in the manifest each resource comes from (errors name it)."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        # Per resource: its node ("manifest nodes['model.p.m']"), its column's name (None: the node itself), the
        # field of its name; an error spells them out (only then: a manifest has many columns).
        self.origins: list[tuple[str, str | None, str]] = []
        self.keys: set[str] = set()
        self.skipped: list[str] = []  # what was not added, for a warning

    def add(self, resource: Resource, origin: tuple[str, str | None, str]) -> bool:
        """Adds the resource unless another has its key; whether it was added."""
        if resource.key in self.keys:
            return False
        self.keys.add(resource.key)
        self.snapshot.resources.append(resource)
        self.origins.append(origin)
        return True

    def check(self, *, texts: bool) -> None:
        """Every resource can be stored: its name and attributes are text (unique ids were checked with their
        section; keys are made of these), and its key and name fit the indexes. In order: a table before its
        columns, a column's name before the databuilder id made of it. `texts`: whether the manifest may hold
        text that is not storable at all (when not, the walk is skipped)."""
        for resource, origin in zip(self.snapshot.resources, self.origins, strict=True):
            name_field = origin[2]
            if texts:
                carried = {name_field: resource.name} | {_MANIFEST_FIELDS.get(name, name): value
                                                         for name, value in resource.attributes.items()}  # fmt: skip
                not_text = text_problem_in(carried)
                if not_text:
                    raise _refused(f"{_at(origin, not_text[0])}: {not_text[1]}")
            problem = key_problem(resource.key)
            if problem:
                raise _refused(f"{_at(origin)}: {problem}")
            problem = name_problem(resource.name, resource.parent_key)
            if problem:
                raise _refused(f"{_at(origin, name_field)} {problem}")


def _artifact(parts: Mapping[str, bytes], part: str) -> dict[str, Any]:
    marker, file = _PARTS[part]
    if part not in parts:
        raise InvalidUpload(f"The multipart part '{part}' is required: dbt's target/{file}.", field=part)
    try:
        document = json.loads(parts[part])
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, or nested too deep to read
        raise InvalidUpload(f"{part} is not JSON ({error}): upload dbt's target/{file}.", field=part) from None
    metadata = document.get("metadata") if isinstance(document, dict) else None
    version = metadata.get("dbt_schema_version") if isinstance(metadata, dict) else None
    if isinstance(version, str) and marker in version and isinstance(document, dict):
        return document
    for other, (other_marker, other_file) in _PARTS.items():
        if other != part and isinstance(version, str) and other_marker in version:
            raise InvalidUpload(f"{part} holds a dbt {other_file} (dbt_schema_version {_shown(version)}): the "
                                f"manifest and run_results files look swapped.", field=part)  # fmt: skip
    raise InvalidUpload(f"{part} is not a dbt {file}: metadata.dbt_schema_version should contain '{marker}' but is "
                        f"{_shown(version)}. Upload dbt's target/{file}.", field=part)  # fmt: skip


def _section(manifest: dict[str, Any], name: str, *, required: bool = False) -> dict[str, dict[str, Any]]:
    """A manifest section of nodes by unique id; entries that are not objects are left out (nothing to read)."""
    section = manifest.get(name)
    if section is None and not required:
        return {}
    if not isinstance(section, dict):
        raise InvalidUpload(f"manifest {name} must be an object of nodes by unique id, not {_kind(section)}.",
                            field="manifest")  # fmt: skip
    nodes = {unique_id: node for unique_id, node in section.items() if isinstance(node, dict)}
    for unique_id in nodes:  # resources, warnings and errors may quote any of them
        problem = text_problem(unique_id)
        if problem:
            raise _refused(f"{_where(name, unique_id)}: {problem}")
    return nodes


def _statuses(run_results: dict[str, Any], runnable: Mapping[str, Any], sources: Mapping[str, Any]) -> dict[str, str]:
    """Each result's status by unique id, once every result is known to name a node of the manifest."""
    results = run_results.get("results")
    if not isinstance(results, list):
        raise InvalidUpload(f"run_results results must be a list, not {_kind(results)}.", field="run_results")
    statuses = {}
    for index, result in enumerate(results):
        unique_id = result.get("unique_id") if isinstance(result, dict) else None
        if not isinstance(unique_id, str):
            raise InvalidUpload(f"run_results results[{index}] has no unique_id.", field="run_results")
        if unique_id not in runnable and unique_id not in sources:
            raise InvalidUpload(f"run_results results[{index}].unique_id {_shown(unique_id)} is not in the manifest: "
                                "upload the manifest.json of the same dbt build.", field="run_results")  # fmt: skip
        statuses[unique_id] = _text(result, "status").lower()
    return statuses


def _tables(collected: _Collected, nodes: Mapping[str, Any], sources: Mapping[str, Any]) -> dict[str, str]:
    """Adds the table resources, then their columns; returns each table's asset key by unique id."""
    keys: dict[str, str] = {}
    added: list[tuple[str, dict[str, Any], str, str]] = []  # unique id, node, databuilder id, where
    tables = chain(((u, n, "nodes", "alias") for u, n in nodes.items() if n.get("resource_type") in _TABLE_NODES),
                   ((u, s, "sources", "identifier") for u, s in sources.items()))  # fmt: skip
    for unique_id, node, section, physical_field in tables:
        databuilder_id = _text(node, "relation_name") or unique_id  # ephemeral models have no relation
        key, where = resource_key(databuilder_id), _where(section, unique_id)
        native_type = "source" if section == "sources" else _text(_object(node, "config"), "materialized")
        attributes = {"databuilder_id": databuilder_id, "description": _text(node, "description"),
                      "native_type": native_type or _text(node, "resource_type"), "unique_id": unique_id}  # fmt: skip
        name, name_field = _text(node, physical_field), physical_field
        if not name:
            name, name_field = _text(node, "name") or unique_id, "name"
        if collected.add(Resource(key, "table", name, "", attributes), (where, None, name_field)):
            keys[unique_id] = key
            added.append((unique_id, node, databuilder_id, where))
        else:
            collected.skipped.append(unique_id)
    # Columns after every table: a column whose identity is a table's is the one skipped.
    for unique_id, node, table_id, where in added:
        for column_name, column in _object(node, "columns").items():
            column = column if isinstance(column, dict) else {}
            databuilder_id, data_type = f"{table_id}.{column_name}", _text(column, "data_type")
            attributes = {"databuilder_id": databuilder_id, "description": _text(column, "description")}
            resource = Resource(resource_key(databuilder_id), "column", column_name, keys[unique_id],
                                attributes | ({"type": data_type} if data_type else {}))  # fmt: skip
            if not collected.add(resource, (where, column_name, "")):
                collected.skipped.append(f"{unique_id} column {column_name}")
    return keys


def _tests(collected: _Collected, runnable: Mapping[str, Any], unit_tests: Mapping[str, Any],
           statuses: Mapping[str, str], tables: Mapping[str, str], sources: Mapping[str, Any]) -> None:  # fmt: skip
    """Adds a test resource for each test with a result, under the table it tests."""
    unattached, unknown_status = [], []
    for unique_id, node in runnable.items():
        if node.get("resource_type") not in ("test", "unit_test") or unique_id not in statuses:
            continue
        status, parent = statuses[unique_id], _attached(node, tables, sources)
        if status not in _TEST_STATUSES:  # e.g. the `success` of `dbt compile` or `dbt docs generate`
            unknown_status.append(unique_id)
        elif parent is None:
            unattached.append(unique_id)
        else:
            attributes = {"status": status, "severity": _text(_object(node, "config"), "severity").lower(),
                          "test_name": _text(_object(node, "test_metadata"), "name"),
                          "column_name": _text(node, "column_name"), "unique_id": unique_id}  # fmt: skip
            resource = Resource(resource_key(unique_id), "test", _text(node, "name") or unique_id, parent,
                                {name: value for name, value in attributes.items() if value})  # fmt: skip
            section = "unit_tests" if unique_id in unit_tests else "nodes"
            if not collected.add(resource, (_where(section, unique_id), None, "name")):
                collected.skipped.append(unique_id)
    _warn(collected.snapshot, "dbt test results skipped: no single model to attach them to", unattached)
    _warn(collected.snapshot, "dbt test results skipped: their status is not a test's (upload the run_results.json "
                              "of `dbt build` or `dbt test`)", unknown_status)  # fmt: skip


def _attached(test: Mapping[str, Any], tables: Mapping[str, str], sources: Mapping[str, Any]) -> str | None:
    """The key of the table a test tests: its attached_node (dbt >= 1.5), else the one model among its
    dependencies (a relationships test also depends on the model it refers to), else the one source."""
    attached = test.get("attached_node")
    if isinstance(attached, str) and attached in tables:
        return tables[attached]
    found = [unique_id for unique_id in _depends_on(test) if unique_id in tables]
    candidates = [unique_id for unique_id in found if unique_id not in sources] or found
    return tables[candidates[0]] if len(candidates) == 1 else None


def _depends_on(node: Mapping[str, Any]) -> Iterable[str]:
    found = _object(node, "depends_on").get("nodes")
    return dict.fromkeys(u for u in found if isinstance(u, str)) if isinstance(found, list) else ()


def _object(node: Mapping[str, Any], name: str) -> dict[str, Any]:
    found = node.get(name)
    return found if isinstance(found, dict) else {}


def _text(node: Mapping[str, Any], name: str) -> str:
    found = node.get(name)
    return found if isinstance(found, str) else ""


def _warn(snapshot: Snapshot, what: str, unique_ids: list[str]) -> None:
    if unique_ids:
        more = f" and {len(unique_ids) - _WARNED_IDS} more" if len(unique_ids) > _WARNED_IDS else ""
        snapshot.warnings.append(f"{len(unique_ids)} {what}: {', '.join(unique_ids[:_WARNED_IDS])}{more}.")


def _shown(value: object) -> str:
    """A value from the upload as an error shows it: quoted (escaped) and cut short."""
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _where(section: str, unique_id: str) -> str:
    return f"manifest {section}[{_shown(unique_id)}]"


def _at(origin: tuple[str, str | None, str], field: str = "") -> str:
    """Where a resource, or one of its fields, is in the manifest: "manifest nodes['model.p.m'].columns['c']"."""
    node, column, _ = origin
    where = node if column is None else f"{node}.columns[{_shown(column)}]"
    return f"{where}.{field}" if field else where


def _refused(detail: str) -> InvalidUpload:
    return InvalidUpload(f"{detail}.", field="manifest")


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), "a scalar")
