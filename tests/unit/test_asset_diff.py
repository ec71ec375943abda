"""Diffing a crawl against the last successful state."""

from services.connector.diff import AssetDiff
from services.connector.sources.base import key_part, make_asset
from services.connector.sources.uploaded import UploadedSource
from services.core.imports import Resource, Snapshot


def asset(key: str, comment: str = "") -> dict:
    return make_asset(key, "table", key, None, {"comment": comment})


def previous_of(*keys: str) -> dict[str, str]:
    return {a["key"]: a["fingerprint"] for a in (asset(k) for k in keys)}


def test_first_crawl_creates_everything():
    diff = AssetDiff()
    changes = diff.add([asset("a"), asset("b")], {})
    assert [a["key"] for a in changes.created] == ["a", "b"] and changes.updated == []
    assert not diff.finish(live_before=0, fail_safe_percent=20).applies
    assert (diff.processed, diff.created, diff.updated, diff.deleted) == (2, 2, 0, 0)


def test_only_changed_assets_are_returned_and_the_unreported_live_ones_are_gone():
    diff = AssetDiff()
    # The store holds keep, edit and gone; the batch's lookup finds the two of them it reports.
    changes = diff.add([asset("keep"), asset("edit", comment="new"), asset("new")], previous_of("keep", "edit"))
    assert [a["key"] for a in changes.created] == ["new"] and [a["key"] for a in changes.updated] == ["edit"]
    removal = diff.finish(live_before=3, fail_safe_percent=100)
    assert removal.applies and removal.gone == 1
    assert (diff.processed, diff.created, diff.updated, diff.deleted) == (3, 1, 1, 1)


def test_deletions_above_the_fail_safe_threshold_are_withheld():
    diff = AssetDiff()
    diff.add([asset(f"t{i}") for i in range(7)], previous_of(*(f"t{i}" for i in range(7))))  # 3 of 10 gone
    removal = diff.finish(live_before=10, fail_safe_percent=20)
    assert not removal.applies and removal.withheld == 3 and removal.withheld_percent == 30.0
    assert diff.deleted == 0


def test_deletions_at_the_fail_safe_threshold_are_applied():
    diff = AssetDiff()
    diff.add([asset(f"t{i}") for i in range(8)], previous_of(*(f"t{i}" for i in range(8))))  # 2 of 10 gone: 20%
    removal = diff.finish(live_before=10, fail_safe_percent=20)
    assert removal.applies and removal.gone == 2 and removal.withheld == 0 and diff.deleted == 2


def test_a_crawl_that_finds_nothing_withholds_every_deletion():
    diff = AssetDiff()
    removal = diff.finish(live_before=2, fail_safe_percent=20)
    assert not removal.applies and removal.withheld == 2 and diff.deleted == 0


def test_nothing_gone_is_nothing_to_delete():
    diff = AssetDiff()
    diff.add([asset("a"), asset("b")], previous_of("a", "b"))
    removal = diff.finish(live_before=2, fail_safe_percent=0)
    assert not removal.applies and removal.gone == 0 and diff.deleted == 0


def test_fingerprint_depends_on_content_not_on_attribute_order():
    a = make_asset("k", "column", "c", "p", {"x": 1, "y": 2})
    b = make_asset("k", "column", "c", "p", {"y": 2, "x": 1})
    c = make_asset("k", "column", "c", "p", {"x": 1, "y": 3})
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]


def test_key_parts_escape_the_separator():
    assert key_part("a/b%c") == "a%2Fb%25c"


async def test_an_upload_naming_a_resource_twice_reports_it_once_the_first_one():
    first, again = (Resource("db/s/t", "table", "t", "db/s", {"n": n}) for n in (1, 2))
    source = UploadedSource(Snapshot(resources=[first, Resource("db/s", "schema", "s", "db", {}), again]))
    reported = [a for batch in [b async for b in source.crawl()] for a in batch]
    assert [(a["key"], a["attributes"]) for a in reported] == [("db/s/t", {"n": 1}), ("db/s", {})]
