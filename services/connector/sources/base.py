"""What every source plug-in shares: the plug-in protocol, its report, and how an asset is built."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

AssetDict = dict[str, Any]  # the shape of shared.events.Asset, built without per-asset validation cost


@dataclass
class SourceReport:
    warnings: list[str] = field(default_factory=list)


class SourcePlugin(Protocol):
    report: SourceReport

    async def test_connection(self) -> None: ...

    def crawl(self) -> AsyncIterator[list[AssetDict]]: ...

    async def close(self) -> None: ...


class SourceFactory(Protocol):
    def __call__(self, config: dict[str, Any], credentials: dict[str, Any]) -> SourcePlugin: ...


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


def key_part(name: str) -> str:
    """Escape a name for use as one segment of a '/'-separated asset key."""
    return name.replace("%", "%25").replace("/", "%2F")
