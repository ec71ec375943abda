"""The plug-in of runs that import a stored upload (file_csv, file_jsonl, dbt_core): its format's parser reads the
bytes again (they were validated when stored) and the snapshot is reported like a crawl."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from services.connector.sources.base import AssetDict, SourceError, SourceReport, make_asset
from services.core.errors import DomainError
from services.core.imports import LineageEdge, Resource, Snapshot
from services.core.imports.formats import FORMATS, Format

BATCH_SIZE = 2000


class UploadedSource:
    def __init__(self, snapshot: Snapshot) -> None:
        self.report = SourceReport()
        for warning in snapshot.warnings:
            self.report.warn(warning)
        self._snapshot = snapshot

    @classmethod
    async def read(cls, format_: str, parts: Mapping[str, bytes]) -> UploadedSource:
        try:
            spec = FORMATS[Format(format_)]
            # Parsing 100,000 lines takes a second: in a thread, so heartbeats keep going meanwhile.
            return cls(await asyncio.to_thread(spec.parse, parts))
        except (ValueError, DomainError) as invalid:  # validated when stored: only a changed parser gets here
            detail = invalid.detail if isinstance(invalid, DomainError) else str(invalid)
            raise SourceError(f"The stored upload cannot be read: {detail}") from None

    async def test_connection(self) -> None:
        return None

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        # A plug-in reports each key once (the diff relies on it); a file may name one twice: the first one counts.
        first: dict[str, Resource] = {}
        for resource in self._snapshot.resources:
            first.setdefault(resource.key, resource)
        unique = list(first.values())
        for start in range(0, len(unique), BATCH_SIZE):
            yield [make_asset(r.key, r.kind, r.name, r.parent_key, r.attributes)
                   for r in unique[start : start + BATCH_SIZE]]  # fmt: skip

    def lineage(self) -> list[LineageEdge]:
        return self._snapshot.edges

    async def close(self) -> None:
        return None
