"""Diff of a crawl against the asset store's last successful state (pure, unit-tested)."""

from __future__ import annotations

from services.connector.sources.base import AssetDict
from services.core.runs import AssetCounts


class AssetDiff:
    """Feed crawl batches in; get back only what changed, and the counts of the run so far."""

    def __init__(self, previous: dict[str, str]) -> None:
        self._previous = previous  # key -> fingerprint of live assets after the last successful run
        self._seen: set[str] = set()
        self.processed = 0
        self.created = 0
        self.updated = 0
        self.deleted = 0

    def add(self, batch: list[AssetDict]) -> list[AssetDict]:
        changed: list[AssetDict] = []
        for asset in batch:
            key = asset["key"]
            if key in self._seen:
                continue  # a source listing the same thing twice is counted once
            self._seen.add(key)
            self.processed += 1
            before = self._previous.get(key)
            if before is None:
                self.created += 1
                changed.append(asset)
            elif before != asset["fingerprint"]:
                self.updated += 1
                changed.append(asset)
        return changed

    def finish(self) -> list[str]:
        """Keys that disappeared. Only call after a complete crawl: a partial one would delete too much."""
        gone = sorted(key for key in self._previous if key not in self._seen)
        self.deleted = len(gone)
        return gone

    @property
    def counts(self) -> AssetCounts:
        return AssetCounts(self.processed, self.created, self.updated, self.deleted)
