"""Validation edge cases of dbt artifacts, on hand-trimmed JSON (the mapping is checked on real artifacts in
tests/integration/test_dbt_artifacts.py)."""

import copy
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
        ("model.p.odd.c", "column", "c", {"databuilder_id": "model.p.odd.c", "description": ""}),
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
    same = {"resource_type": "model", "relation_name": '"d"."s"."t"', "columns": {"c": {}}}
    snapshot = parse(upload({"model.p.a": same, "model.p.b": same}))
    assert [(r.kind, r.key) for r in snapshot.resources] == [("table", '"d"."s"."t"'), ("column", '"d"."s"."t".c')]
    assert snapshot.warnings == ["1 dbt resources skipped: their identity is already another resource's: model.p.b."]


def test_columns_are_keyed_by_the_rule_of_every_format_and_one_whose_identity_a_table_has_is_skipped():
    ephemeral = {"resource_type": "model", "config": {"materialized": "ephemeral"}}
    snapshot = parse(upload({"model.p.m": ephemeral | {"columns": {"v2": {"data_type": "int"}, "c/d": {}}},
                             "model.p.m.v2": ephemeral}))  # a versioned model's unique id  # fmt: skip
    assert [(r.kind, r.key, r.parent_key, r.attributes.get("databuilder_id")) for r in snapshot.resources] == [
        ("table", "model.p.m", "", "model.p.m"), ("table", "model.p.m.v2", "", "model.p.m.v2"),
        ("column", "model.p.m.c%2Fd", "model.p.m", "model.p.m.c/d"),
    ]  # fmt: skip
    assert snapshot.warnings == [
        "1 dbt resources skipped: their identity is already another resource's: model.p.m column v2."
    ]


MODEL = {
    "resource_type": "model",
    "relation_name": '"d"."s"."m"',
    "alias": "m",
    "description": "fine",
    "config": {"materialized": "table"},
    "columns": {"c": {"description": "fine", "data_type": "int"}},
}
TEST = {
    "resource_type": "test",
    "name": "not_null_m_c",
    "attached_node": "model.p.m",
    "column_name": "c",
    "config": {"severity": "ERROR"},
    "test_metadata": {"name": "not_null"},
}


def upload_with(path: tuple[str, ...], value: object) -> dict[str, bytes]:
    """An upload of a model with a column, a test of it and a source, with `value` set at `path` of the manifest."""
    manifest = {"nodes": {"model.p.m": copy.deepcopy(MODEL), "test.p.t": copy.deepcopy(TEST)},
                "sources": {"source.p.s.t": {"identifier": "t"}}}  # fmt: skip
    *parents, last = path
    target = manifest
    for name in parents:
        target = target[name]
    target[last] = value
    return upload(manifest["nodes"], [{"unique_id": "test.p.t", "status": "pass"}], sources=manifest["sources"])


M, T = ("nodes", "model.p.m"), ("nodes", "test.p.t")
TEXT_PLACES = {  # where a resource's string comes from: the error names it so
    (*M, "description"): "nodes['model.p.m'].description",
    (*M, "alias"): "nodes['model.p.m'].alias",
    (*M, "relation_name"): "nodes['model.p.m'].relation_name",
    (*M, "config", "materialized"): "nodes['model.p.m'].config.materialized",
    (*M, "columns", "c", "description"): "nodes['model.p.m'].columns['c'].description",
    (*M, "columns", "c", "data_type"): "nodes['model.p.m'].columns['c'].data_type",
    ("sources", "source.p.s.t", "identifier"): "sources['source.p.s.t'].identifier",
    (*T, "name"): "nodes['test.p.t'].name",
    (*T, "column_name"): "nodes['test.p.t'].column_name",
    (*T, "config", "severity"): "nodes['test.p.t'].config.severity",
    (*T, "test_metadata", "name"): "nodes['test.p.t'].test_metadata.name",
}


@pytest.mark.parametrize(("path", "where"), TEXT_PLACES.items(), ids=TEXT_PLACES.values())
@pytest.mark.parametrize(("text", "problem"), [
    ("bad\u0000nul", "NUL characters (\\u0000) are not allowed"),
    ("lone \ud800", "unpaired UTF-16 surrogates (\\ud800-\\udfff) are not valid text"),
], ids=["nul", "surrogate"])  # fmt: skip
def test_a_string_a_resource_would_carry_that_is_no_storable_text_is_refused_naming_the_node(path, where, text,
                                                                                               problem):  # fmt: skip
    error = refused(upload_with(path, text))
    assert (error.field, error.detail) == ("manifest", f"manifest {where}: {problem}.")


@pytest.mark.parametrize(("path", "value", "where"), [
    ((*M, "columns", "bad\u0000nul"), {}, "manifest nodes['model.p.m'].columns['bad\\x00nul']"),
    (("nodes", "model.p.bad\u0000nul"), MODEL, "manifest nodes['model.p.bad\\x00nul']"),
    (("sources", "source.p.\u0000"), {}, "manifest sources['source.p.\\x00']"),
])  # fmt: skip
def test_a_unique_id_or_column_name_that_is_no_storable_text_is_refused_naming_it_escaped(path, value, where):
    assert refused(upload_with(path, value)).detail == f"{where}: NUL characters (\\u0000) are not allowed."


@pytest.mark.parametrize("encode", [
    lambda text: text.replace("\\ud800", "\ud800").encode("utf-8", "surrogatepass"),  # json.loads decodes it so
    lambda text: text.encode("utf-16"),
], ids=["utf-8-surrogate-bytes", "utf-16"])  # fmt: skip
def test_unstorable_text_is_found_however_the_manifest_spells_it(encode):
    parts = upload_with((*M, "description"), "lone \ud800")
    parts["manifest"] = encode(parts["manifest"].decode())
    assert refused(parts).detail == (
        "manifest nodes['model.p.m'].description: unpaired UTF-16 surrogates (\\ud800-\\udfff) are not valid text."
    )


def test_text_the_snapshot_does_not_carry_is_not_read():
    model = MODEL | {"raw_code": "select '\u0000'", "meta": {"\ud800": 1}}
    assert len(parse(upload({"model.p.m": model})).resources) == 2


@pytest.mark.parametrize(("path", "value", "detail"), [
    ((*M, "alias"), "x" * 1001, "nodes['model.p.m'].alias is longer than 1000 characters"),
    ((*T, "name"), "x" * 1001, "nodes['test.p.t'].name is longer than 1000 characters"),
    ((*M, "relation_name"), "r" * 2001, "nodes['model.p.m']: the resource's identity is longer than 2000 bytes"),
    ((*M, "columns", "表" * 700), {},  # the column's name is cut short
     f"nodes['model.p.m'].columns['{'表' * 156}...]: the resource's identity is longer than 2000 bytes"),
])  # fmt: skip
def test_a_name_or_identity_too_long_for_the_indexes_is_refused_naming_the_node(path, value, detail):
    assert refused(upload_with(path, value)).detail == f"manifest {detail}."


def test_a_test_name_too_long_to_index_after_its_models_identity_is_refused():
    parts = upload({"model.p.m": MODEL | {"relation_name": "r" * 1900}, "test.p.t": TEST | {"name": "表" * 300}},
                   [{"unique_id": "test.p.t", "status": "fail"}])  # fmt: skip
    assert refused(parts).detail == ("manifest nodes['test.p.t'].name is too long to index: with its parent's "
                                     "identity it takes 2800 bytes in UTF-8, more than 2600.")  # fmt: skip
