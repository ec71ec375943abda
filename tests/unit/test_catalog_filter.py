"""The resource catalog's filter (Secoda's `filter` query parameter): what it allows, and every way it is refused."""

import json
import uuid

import pytest

from services.core.catalog import MAX_NESTING, CatalogFilter, parse_filter
from services.core.errors import InvalidInput


def leaf(operator: str, field: str, value: object) -> dict:
    return {"operator": operator, "field": field, "value": value}


def parsed(tree: object) -> CatalogFilter:
    return parse_filter(json.dumps(tree))


def test_no_filter_constrains_nothing():
    assert parse_filter(None).allowed == {}
    assert parsed({"operator": "and", "operands": []}).allowed == {}


def test_exact_and_in_give_the_values_a_field_may_take():
    assert parsed(leaf("exact", "title", "orders")).values("title") == ["orders"]
    assert parsed(leaf("in", "entity_type", ["table", "column"])).values("entity_type") == ["column", "table"]
    assert parsed(leaf("in", "native_type", [])).allowed == {"native_type": frozenset()}  # matches nothing


def test_and_intersects_the_values_of_one_field_and_combines_fields_at_any_depth():
    tree = {"operator": "and", "operands": [
        leaf("in", "title", ["a", "b", "c"]),
        {"operator": "and", "operands": [leaf("in", "title", ["b", "c", "d"]), leaf("exact", "entity_type", "table")]},
        leaf("exact", "title", "c"),
    ]}  # fmt: skip
    where = parsed(tree)
    assert (where.values("title"), where.values("entity_type"), where.values("parent_id")) == (["c"], ["table"], None)
    disjoint = parsed({"operator": "and", "operands": [leaf("exact", "title", "a"), leaf("exact", "title", "b")]})
    assert disjoint.allowed == {"title": frozenset()}


def test_ids_that_are_not_uuids_match_nothing_instead_of_failing():
    known = uuid.uuid4()
    where = parsed(leaf("in", "integration_id", [str(known), "not-a-uuid", ""]))
    assert where.ids("integration_id") == [known] and where.ids("parent_id") is None
    assert parsed(leaf("exact", "parent_id", "x")).ids("parent_id") == []


def test_texts_are_every_value_for_the_edge_to_check():
    where = parsed({"operator": "and", "operands": [leaf("exact", "title", "t"), leaf("in", "native_type", ["v"])]})
    assert sorted(where.texts()) == ["t", "v"]


def refused(raw: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as error:
        parse_filter(raw)
    return error.value


@pytest.mark.parametrize(
    ("tree", "field", "says"),
    [
        ([leaf("exact", "title", "x")], "filter", "must be an object"),
        ("title", "filter", "must be an object"),
        (None, "filter", "must be an object"),
        ({"field": "title", "value": "x"}, "filter.operator", "must be one of exact, in, and; got null"),
        (leaf("or", "title", "x"), "filter.operator", 'got "or"'),
        (leaf("contains", "title", "x"), "filter.operator", 'got "contains"'),
        ({"operator": 3}, "filter.operator", "got 3"),
        ({"operator": "and"}, "filter.operands", "needs a list of filters"),
        ({"operator": "and", "operands": leaf("exact", "title", "x")}, "filter.operands", "needs a list of filters"),
        ({"operator": "and", "operands": [], "negate": True}, "filter", 'unknown key "negate"'),
        (leaf("exact", "title", "x") | {"values": ["y"]}, "filter",
         "unknown key \"values\"; 'exact' filters have operator, field, value"),
        ({"operator": "exact", "value": "x"}, "filter.field", "must be one of integration_id, parent_id, entity_type"),
        (leaf("exact", "description", "x"), "filter.field", 'got "description"'),
        (leaf("in", "id", ["x"]), "filter.field", 'got "id"'),
        ({"operator": "exact", "field": "title"}, "filter.value", "an 'exact' filter needs a string; got null"),
        (leaf("exact", "title", 7), "filter.value", "got 7"),
        (leaf("exact", "title", ["x"]), "filter.value", "needs a string"),
        (leaf("in", "title", "x"), "filter.value", "an 'in' filter needs a list of strings"),
        (leaf("in", "title", ["x", None]), "filter.value", "needs a list of strings"),
        ({"operator": "and", "operands": [leaf("exact", "title", "x"), leaf("exact", "tilte", "y")]},
         "filter.operands[1].field", 'got "tilte"'),
        ({"operator": "and", "operands": [{"operator": "and", "operands": ["x"]}]}, "filter.operands[0].operands[0]",
         "must be an object"),
    ],
)  # fmt: skip
def test_a_filter_outside_the_subset_is_refused_naming_the_operand(tree, field, says):
    error = refused(json.dumps(tree))
    assert error.field == field and says in error.detail and error.detail.startswith(field + ": "), error.detail


@pytest.mark.parametrize("raw", ["", "{", "{'operator': 'and'}", '{"operator": "and", "operands": []} x', "NaNx"])
def test_text_that_is_not_json_is_refused(raw):
    error = refused(raw)
    assert error.field == "filter" and "not valid JSON" in error.detail


def test_nesting_beyond_the_limit_is_refused_and_up_to_it_accepted():
    def nested(depth: int) -> dict:
        tree: dict = leaf("exact", "title", "x")
        for _ in range(depth - 1):
            tree = {"operator": "and", "operands": [tree]}
        return tree

    assert parsed(nested(MAX_NESTING)).values("title") == ["x"]
    error = refused(json.dumps(nested(MAX_NESTING + 1)))
    assert error.field.startswith("filter") and f"deeper than {MAX_NESTING}" in error.detail
    deep = refused('{"operator": "and", "operands": ' + "[" * 100_000)  # beyond what the JSON decoder recurses into
    assert deep.field == "filter" and f"deeper than {MAX_NESTING}" in deep.detail


def test_what_a_refusal_echoes_is_short_and_ascii():
    error = refused(json.dumps(leaf("exact", "title", ["\u00e9" * 500])))
    assert len(error.detail) < 200 and error.detail.isascii()
