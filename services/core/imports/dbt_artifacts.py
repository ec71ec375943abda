"""dbt Core artifacts (manifest.json and run_results.json of one `dbt build`) read as a Snapshot.

Models, seeds, snapshots and sources become table resources with their documented columns, `depends_on` becomes
lineage between them, and each test with a result becomes a `test` resource under the model it tests. Artifacts
are large and loosely shaped (every field of a node may be missing or null), so everything is read defensively:
the only errors are the ones that make the upload meaningless, and they name the part.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

from services.core.imports.model import Internal, InvalidUpload, LineageEdge, Resource, Snapshot
from services.core.objects import escape

# Each part, the marker its metadata.dbt_schema_version URL holds, and the file dbt writes it to.
_PARTS = {"manifest": ("/manifest/", "manifest.json"), "run_results": ("/run-results/", "run_results.json")}
_TABLE_NODES = ("model", "seed", "snapshot")
_TEST_STATUSES = ("pass", "fail", "warn", "error", "skipped")
_WARNED_IDS = 5  # a warning names this many unique ids, then counts the rest


def parse(parts: Mapping[str, bytes]) -> Snapshot:
    manifest, run_results = _artifact(parts, "manifest"), _artifact(parts, "run_results")
    nodes, sources = _section(manifest, "nodes", required=True), _section(manifest, "sources")
    # `dbt build` runs unit tests too: their results name the manifest's `unit_tests`, not its nodes.
    runnable = nodes | _section(manifest, "unit_tests")
    statuses = _statuses(run_results, runnable, sources)
    snapshot = Snapshot()
    tables = _tables(snapshot, nodes, sources)
    for unique_id, node in nodes.items():
        if unique_id in tables:
            snapshot.edges += [LineageEdge(Internal(tables[d]), Internal(tables[unique_id]))
                               for d in _depends_on(node) if d in tables]  # fmt: skip
    _tests(snapshot, runnable, statuses, tables, sources)
    return snapshot


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
    return {unique_id: node for unique_id, node in section.items() if isinstance(node, dict)}


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


def _tables(snapshot: Snapshot, nodes: Mapping[str, Any], sources: Mapping[str, Any]) -> dict[str, str]:
    """Adds the table resources and their columns; returns each table's asset key by unique id."""
    keys: dict[str, str] = {}
    taken: set[str] = set()
    duplicates = []
    tables = chain(((u, n, n.get("alias")) for u, n in nodes.items() if n.get("resource_type") in _TABLE_NODES),
                   ((u, s, s.get("identifier")) for u, s in sources.items()))  # fmt: skip
    for unique_id, node, physical_name in tables:
        databuilder_id = _text(node, "relation_name") or unique_id  # ephemeral models have no relation
        key = escape(databuilder_id)
        if key in taken:
            duplicates.append(unique_id)
            continue
        keys[unique_id] = key
        taken.add(key)
        native_type = "source" if unique_id in sources else _text(_object(node, "config"), "materialized")
        attributes = {"databuilder_id": databuilder_id, "description": _text(node, "description"),
                      "native_type": native_type or _text(node, "resource_type"), "unique_id": unique_id}  # fmt: skip
        name = physical_name if isinstance(physical_name, str) and physical_name else _text(node, "name")
        snapshot.resources.append(Resource(key, "table", name or unique_id, "", attributes))
        for column_name, column in _object(node, "columns").items():
            column = column if isinstance(column, dict) else {}
            data_type = _text(column, "data_type")
            snapshot.resources.append(Resource(f"{key}/{escape(column_name)}", "column", column_name, key,
                                               {"description": _text(column, "description")}
                                               | ({"type": data_type} if data_type else {})))  # fmt: skip
    _warn(snapshot, "dbt nodes skipped: their relation is already another node's", duplicates)
    return keys


def _tests(snapshot: Snapshot, runnable: Mapping[str, Any], statuses: Mapping[str, str], tables: Mapping[str, str],
           sources: Mapping[str, Any]) -> None:  # fmt: skip
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
            found = {"status": status, "severity": _text(_object(node, "config"), "severity").lower(),
                     "test_name": _text(_object(node, "test_metadata"), "name"),
                     "column_name": _text(node, "column_name"), "unique_id": unique_id}  # fmt: skip
            attributes = {name: value for name, value in found.items() if value}
            snapshot.resources.append(Resource(escape(unique_id), "test", _text(node, "name") or unique_id, parent,
                                               attributes))  # fmt: skip
    _warn(snapshot, "dbt test results skipped: no single model to attach them to", unattached)
    _warn(snapshot, "dbt test results skipped: their status is not a test's (upload the run_results.json of "
                    "`dbt build` or `dbt test`)", unknown_status)  # fmt: skip


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
    """A value from the upload as an error shows it: quoted and cut short."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), "a scalar")
