"""What every source plug-in shares: its error, and how an asset is built. The plug-in contract is in core."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from services.core.objects import escape
from services.core.sources.spec import SourcePlugin, SourceReport

__all__ = ["AssetDict", "SourceError", "SourcePlugin", "SourceReport", "key_part", "make_asset"]

AssetDict = dict[str, Any]  # the shape of shared.events.Asset, built without per-asset validation cost


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
    return escape(name)
