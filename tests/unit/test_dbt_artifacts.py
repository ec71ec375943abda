"""Validation edge cases of dbt artifacts, on hand-trimmed JSON (the mapping is checked on real artifacts in
tests/integration/test_dbt_artifacts.py)."""

import json

import pytest

from services.core.imports.dbt_artifacts import parse
from services.core.imports.model import InvalidUpload

MANIFEST_SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v12.json"
RESULTS_SCHEMA = "https://schemas.getdbt.com/dbt/run-results/v6.json"


def upload(nodes: object = None, results: object = (), **manifest: object) -> dict[str, bytes]:
    document = {"metadata": {"dbt_schema_version": MANIFEST_SCHEMA}, "nodes": {} if nodes is None else nodes} | manifest
    listed = list(results) if isinstance(results, tuple | list) else results
    run_results = {"metadata": {"dbt_schema_version": RESULTS_SCHEMA}, "results": listed}
    return {"manifest": json.dumps(document).encode(), "run_results": json.dumps(run_results).encode()}


def refused(parts: dict[str, bytes]) -> InvalidUpload:
    with pytest.raises(InvalidUpload) as error:
        parse(parts)
    return error.value


def test_a_missing_part_is_named():
    error = refused({"manifest": upload()["manifest"]})
    assert error.field == "run_results" and "run_results.json" in error.detail


@pytest.mark.parametrize("content", [b"{", b"\xff\xfe\x00", b"[" * 100_000], ids=["cut", "not-utf8", "deep"])
def test_a_part_that_is_not_json_is_named(content):
    error = refused(upload() | {"run_results": content})
    assert error.field == "run_results" and "is not JSON" in error.detail


@pytest.mark.parametrize("content", [b"[]", b'{"metadata": null}', b'{"metadata": {"dbt_schema_version": 12}}',
                                     json.dumps({"metadata": {"dbt_schema_version": "https://x/catalog/v1.json"}})
                                     .encode()])  # fmt: skip
def test_json_without_a_manifest_schema_version_is_not_a_manifest(content):
    error = refused(upload() | {"manifest": content})
    assert error.field == "manifest" and "'/manifest/'" in error.detail and "swapped" not in error.detail


def test_a_run_results_uploaded_as_manifest_is_called_swapped():
    parts = upload()
    error = refused({"manifest": parts["run_results"], "run_results": parts["manifest"]})
    assert error.field == "manifest" and "look swapped" in error.detail and "run_results.json" in error.detail


@pytest.mark.parametrize(("field", "parts"), [
    ("manifest", upload(nodes=[])), ("manifest", upload(sources="x")), ("run_results", upload(results=None)),
    ("run_results", upload(results=["model.p.a"])), ("run_results", upload(results=[{"status": "pass"}])),
])  # fmt: skip
def test_sections_of_the_wrong_shape_are_refused(field, parts):
    assert refused(parts).field == field


def test_a_result_for_a_node_the_manifest_lacks_is_refused_naming_it():
    results = [{"unique_id": "model.p.a", "status": "success"}, {"unique_id": "model.p.gone"}]
    error = refused(upload({"model.p.a": {"resource_type": "model"}}, results))
    assert error.field == "run_results"
    assert "results[1].unique_id 'model.p.gone' is not in the manifest" in error.detail


def test_results_may_name_sources_and_unit_tests():
    parts = upload({"model.p.a": {"resource_type": "model", "depends_on": {"nodes": ["model.p.a"]}}},
                   [{"unique_id": "source.p.s.t", "status": "pass"},
                    {"unique_id": "unit_test.p.a.u", "status": "fail"}],
                   sources={"source.p.s.t": {}},
                   unit_tests={"unit_test.p.a.u": {"resource_type": "unit_test", "name": "u",
                                                   "depends_on": {"nodes": ["model.p.a"]}}})  # fmt: skip
    tests = [r for r in parse(parts).resources if r.kind == "test"]
    assert [(r.name, r.parent_key, r.attributes["status"]) for r in tests] == [("u", "model.p.a", "fail")]


def test_nodes_missing_every_optional_field_still_map():
    snapshot = parse(upload({
        "model.p.bare": {"resource_type": "model"},
        "model.p.odd": {"resource_type": "model", "relation_name": None, "config": None, "columns": {"c": None},
                        "depends_on": {"nodes": "model.p.bare"}, "description": None, "alias": 7},
        "test.p.t": {"resource_type": "test"}, "test.p.u": None,
    }, [{"unique_id": "test.p.t"}]))  # fmt: skip
    assert [(r.key, r.kind, r.name, r.attributes) for r in snapshot.resources] == [
        ("model.p.bare", "table", "model.p.bare",
         {"databuilder_id": "model.p.bare", "description": "", "native_type": "model", "unique_id": "model.p.bare"}),
        ("model.p.odd", "table", "model.p.odd",
         {"databuilder_id": "model.p.odd", "description": "", "native_type": "model", "unique_id": "model.p.odd"}),
        ("model.p.odd/c", "column", "c", {"description": ""}),
    ]  # fmt: skip
    assert snapshot.edges == []
    assert snapshot.warnings == ["1 dbt test results skipped: their status is not a test's (upload the run_results"
                                 ".json of `dbt build` or `dbt test`): test.p.t."]  # fmt: skip


def test_tests_without_one_model_to_attach_to_are_skipped_with_a_warning():
    models = {f"model.p.{n}": {"resource_type": "model"} for n in "ab"}
    tests = {f"test.p.{i}": {"resource_type": "test", "depends_on": {"nodes": ["model.p.a", "model.p.b"]}}
             for i in range(7)}  # fmt: skip
    snapshot = parse(upload(models | tests, [{"unique_id": u, "status": "fail"} for u in tests]))
    assert [r.kind for r in snapshot.resources] == ["table", "table"]
    assert snapshot.warnings == ["7 dbt test results skipped: no single model to attach them to: "
                                 "test.p.0, test.p.1, test.p.2, test.p.3, test.p.4 and 2 more."]  # fmt: skip


def test_a_node_whose_relation_another_node_has_is_skipped_with_a_warning():
    same = {"resource_type": "model", "relation_name": '"d"."s"."t"'}
    snapshot = parse(upload({"model.p.a": same, "model.p.b": same}))
    assert [r.attributes["unique_id"] for r in snapshot.resources] == ["model.p.a"]
    assert snapshot.warnings == ["1 dbt nodes skipped: their relation is already another node's: model.p.b."]
