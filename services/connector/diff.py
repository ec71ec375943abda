"""Diff of a crawl against the asset store's last successful state, and the deletion fail-safe (pure).

The store's side of it (which of a batch's keys are live, with which fingerprint; which live keys a crawl did not
report) is asked batch by batch (services.connector.baseline): nothing that grows with the catalog is held here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.connector.sources.base import CONTAINER_KIND, AssetDict
from services.core.runs import AssetCounts


def counted(asset: AssetDict) -> bool:
    """Whether an asset counts in a run's figures: all but the level above schemas (a container at the root), which
    is part of every key below it but not itself one of the catalog's assets."""
    return not (asset["kind"] == CONTAINER_KIND and asset["parent_key"] == "")


@dataclass(frozen=True)
class Changes:
    """What a batch changes in the store: assets it does not hold yet, and assets whose content changed."""

    created: list[AssetDict] = field(default_factory=list)
    updated: list[AssetDict] = field(default_factory=list)


@dataclass(frozen=True)
class Removal:
    """What a complete crawl found gone: whether to delete it, or how many deletions the fail-safe withheld."""

    gone: int = 0
    live_before: int = 0
    withheld: int = 0

    @property
    def applies(self) -> bool:
        return self.gone > 0 and not self.withheld

    @property
    def withheld_percent(self) -> float:
        return 100.0 * self.withheld / self.live_before if self.live_before else 0.0


class AssetDiff:
    """Feed crawl batches in, each with the live fingerprints the store holds for its keys; get back only what
    changed, and the counts of the run so far (containers are diffed, not counted). A plug-in reports each key
    once."""

    def __init__(self) -> None:
        self.processed = 0
        self.created = 0
        self.updated = 0
        self.deleted = 0
        self.matched = 0  # counted assets the store held live: the rest of the counted live ones are gone

    def add(self, batch: list[AssetDict], previous: Mapping[str, str]) -> Changes:
        changes = Changes()
        for asset in batch:
            weight = counted(asset)
            self.processed += weight
            before = previous.get(asset["key"])
            if before is None:
                changes.created.append(asset)
                self.created += weight
            else:
                self.matched += weight
                if before != asset["fingerprint"]:
                    changes.updated.append(asset)
                    self.updated += weight
        return changes

    def finish(self, live_before: int, fail_safe_percent: float) -> Removal:
        """What disappeared, of the `live_before` counted live assets. Only call after a complete crawl: a partial
        one would delete too much.

        If more than `fail_safe_percent` of the live assets disappeared at once, nothing is deleted: that
        is far more often a schema filter or a revoked grant than a real deletion (DataHub's
        `fail_safe_threshold`)."""
        gone = live_before - self.matched
        if gone and 100.0 * gone / live_before > fail_safe_percent:
            self.deleted = 0
            return Removal(gone=gone, live_before=live_before, withheld=gone)
        self.deleted = gone
        return Removal(gone=gone, live_before=live_before)

    @property
    def counts(self) -> AssetCounts:
        return AssetCounts(self.processed, self.created, self.updated, self.deleted)
