"""Diff of a crawl against the asset store's last successful state, and the deletion fail-safe (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from services.connector.sources.base import AssetDict
from services.core.runs import AssetCounts


@dataclass(frozen=True)
class Removal:
    """What a complete crawl found gone: the keys to delete, or how many deletions the fail-safe withheld."""

    keys: list[str]
    withheld: int = 0
    live_before: int = 0

    @property
    def withheld_percent(self) -> float:
        return 100.0 * self.withheld / self.live_before if self.live_before else 0.0


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

    def is_new(self, key: str) -> bool:
        """Whether the asset was not in the store before this run (a created one, if the run reports it)."""
        return key not in self._previous

    def finish(self, fail_safe_percent: float) -> Removal:
        """What disappeared. Only call after a complete crawl: a partial one would delete too much.

        If more than `fail_safe_percent` of the live assets disappeared at once, nothing is deleted: that
        is far more often a schema filter or a revoked grant than a real deletion (DataHub's
        `fail_safe_threshold`)."""
        gone = sorted(key for key in self._previous if key not in self._seen)
        live = len(self._previous)
        if gone and 100.0 * len(gone) / live > fail_safe_percent:
            self.deleted = 0
            return Removal(keys=[], withheld=len(gone), live_before=live)
        self.deleted = len(gone)
        return Removal(keys=gone, live_before=live)

    @property
    def counts(self) -> AssetCounts:
        return AssetCounts(self.processed, self.created, self.updated, self.deleted)
