"""Every crawled platform against the one contract (tests/sources/contract.py), on its real engine or emulator."""

from __future__ import annotations

from typing import Any

import pytest

from services.connector.diff import AssetDiff, counted
from services.connector.sources.base import CONTAINER_KIND, NORMALIZED_TYPES, SourceError, normalized_type
from services.core.sources import SPECS, SourcePlugin, SystemResolver, check_endpoints
from shared.events import Asset
from tests.sources.contract import ContractPlatform, require
from tests.sources.platforms import all_platforms

pytestmark = pytest.mark.integration

PLATFORMS = all_platforms()
TABLE_KINDS = {"table", "view", "materialized_view", "external_table", "foreign_table"}


async def _plugin(platform: ContractPlatform, credentials: dict[str, Any] | None = None) -> SourcePlugin:
    spec = platform.spec
    config = spec.parse_config(platform.configuration())
    secrets = spec.parse_credentials(platform.credentials() if credentials is None else credentials)
    addresses = await check_endpoints(spec.endpoints(config), allow_private=True, resolver=SystemResolver())
    return spec.plugin_factory()(config, secrets, addresses)


async def _crawl(platform: ContractPlatform) -> dict[str, dict[str, Any]]:
    plugin = await _plugin(platform)
    assets: dict[str, dict[str, Any]] = {}
    try:
        await plugin.test_connection()
        async for batch in plugin.crawl():
            for asset in batch:
                assert asset["key"] not in assets, f"{asset['key']} reported twice"
                Asset.model_validate(asset)  # the event contract
                assets[asset["key"]] = asset
    finally:
        await plugin.close()
    return assets


def _diff(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    diff = AssetDiff()
    previous = {key: asset["fingerprint"] for key, asset in before.items()}
    diff.add(list(after.values()), previous)
    diff.finish(sum(counted(asset) for asset in before.values()), 100.0)
    return diff.counts.created, diff.counts.updated, diff.counts.deleted


def test_every_crawled_platform_has_a_contract() -> None:
    crawled = {spec.source for spec in SPECS.values() if spec.crawled}
    assert crawled <= {platform.spec.source for platform in PLATFORMS}


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.name)
async def test_crawl_meets_the_contract(platform: ContractPlatform) -> None:
    require(platform)
    await platform.create_fixture()
    first = await _crawl(platform)

    assert {key: asset["kind"] for key, asset in first.items()} == dict(platform.expected.assets)
    for key, attributes in platform.expected.attributes.items():
        assert {name: first[key]["attributes"].get(name) for name in attributes} == dict(attributes), key
    for asset in first.values():
        parent = asset["parent_key"]
        assert parent == "" or parent in first, f"{asset['key']}: parent {parent!r} not crawled"
        if asset["kind"] == CONTAINER_KIND and parent == "":
            assert asset["attributes"].get("nativeType"), asset["key"]
        if asset["kind"] == "column":
            attributes = asset["attributes"]
            assert first[parent]["kind"] in TABLE_KINDS, asset["key"]
            assert attributes["normalizedType"] in NORMALIZED_TYPES
            assert attributes["normalizedType"] == normalized_type(attributes["dataType"]), asset["key"]
            assert attributes["nullable"] in (True, False, None)
        if asset["kind"] in TABLE_KINDS:
            assert isinstance(asset["attributes"]["primaryKey"], list), asset["key"]

    again = await _crawl(platform)
    assert _diff(first, again) == (0, 0, 0), "an unchanged source re-crawled with changes"

    await platform.change_fixture()
    changed = await _crawl(platform)
    assert _diff(again, changed) == platform.expected.changed


@pytest.mark.parametrize("platform", PLATFORMS, ids=lambda p: p.name)
async def test_bad_credentials_are_refused_without_leaking_them(platform: ContractPlatform) -> None:
    require(platform)
    bad = platform.bad_credentials()
    if bad is None:
        pytest.skip(f"{platform.name} has no secret to get wrong")
    plugin = await _plugin(platform, bad)
    try:
        with pytest.raises(SourceError) as refused:
            await plugin.test_connection()
    finally:
        await plugin.close()
    for secret in bad.values():
        assert str(secret) not in str(refused.value)
