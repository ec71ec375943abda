"""Diffing a crawl against the last successful state."""

from services.connector.diff import AssetDiff
from services.connector.sources.base import key_part, make_asset


def asset(key: str, comment: str = "") -> dict:
    return make_asset(key, "table", key, None, {"comment": comment})


def test_first_crawl_creates_everything():
    diff = AssetDiff({})
    changed = diff.add([asset("a"), asset("b")])
    assert [a["key"] for a in changed] == ["a", "b"]
    assert diff.finish(fail_safe_percent=20).keys == []
    assert (diff.processed, diff.created, diff.updated, diff.deleted) == (2, 2, 0, 0)


def previous_of(*keys: str) -> dict[str, str]:
    return {a["key"]: a["fingerprint"] for a in (asset(k) for k in keys)}


def test_only_changed_assets_are_returned_and_gone_ones_deleted():
    diff = AssetDiff(previous_of("keep", "edit", "gone"))
    changed = diff.add([asset("keep"), asset("edit", comment="new"), asset("new")])
    assert sorted(a["key"] for a in changed) == ["edit", "new"]
    assert diff.finish(fail_safe_percent=100).keys == ["gone"]
    assert (diff.processed, diff.created, diff.updated, diff.deleted) == (3, 1, 1, 1)


def test_deletions_above_the_fail_safe_threshold_are_withheld():
    diff = AssetDiff(previous_of(*(f"t{i}" for i in range(10))))
    diff.add([asset(f"t{i}") for i in range(7)])  # 3 of 10 gone: 30% > 20%
    removal = diff.finish(fail_safe_percent=20)
    assert removal.keys == [] and removal.withheld == 3 and removal.withheld_percent == 30.0
    assert diff.deleted == 0


def test_deletions_at_the_fail_safe_threshold_are_applied():
    diff = AssetDiff(previous_of(*(f"t{i}" for i in range(10))))
    diff.add([asset(f"t{i}") for i in range(8)])  # 2 of 10 gone: exactly 20% is not above it
    removal = diff.finish(fail_safe_percent=20)
    assert removal.keys == ["t8", "t9"] and removal.withheld == 0 and diff.deleted == 2


def test_a_crawl_that_finds_nothing_withholds_every_deletion():
    diff = AssetDiff(previous_of("a", "b"))
    removal = diff.finish(fail_safe_percent=20)
    assert removal.keys == [] and removal.withheld == 2 and diff.deleted == 0


def test_an_asset_listed_twice_counts_once():
    diff = AssetDiff({})
    diff.add([asset("a")])
    assert diff.add([asset("a")]) == []
    assert diff.processed == 1


def test_fingerprint_depends_on_content_not_on_attribute_order():
    a = make_asset("k", "column", "c", "p", {"x": 1, "y": 2})
    b = make_asset("k", "column", "c", "p", {"y": 2, "x": 1})
    c = make_asset("k", "column", "c", "p", {"x": 1, "y": 3})
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]


def test_key_parts_escape_the_separator():
    assert key_part("a/b%c") == "a%2Fb%25c"
