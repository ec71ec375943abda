"""The upload formats: which parts each takes, which integrations accept it, and the parser that reads it.

The parser is named by "module:function" and imported on first use (the API must not load sqlglot before an
upload needs it). It takes the parts (name -> bytes) and returns a Snapshot or raises InvalidUpload; the API
calls it to validate an upload before storing it, the connector calls it again on the stored bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from services.core.imports.model import InvalidUpload, Snapshot
from services.core.model import Source

Parser = Callable[[Mapping[str, bytes]], Snapshot]


class Format(StrEnum):
    FILE_CSV = "file_csv"
    FILE_JSONL = "file_jsonl"
    DBT_CORE = "dbt_core"


@dataclass(frozen=True)
class UploadFormat:
    format: Format
    source: Source  # the integration type that accepts it
    required_parts: tuple[str, ...]
    optional_parts: tuple[str, ...]
    parser: str  # "package.module:function", a Parser
    queued: bool  # imported by a run as soon as the integration is free; False: stored until triggered

    def parse(self, parts: Mapping[str, bytes]) -> Snapshot:
        for part in self.required_parts:
            if part not in parts:
                raise InvalidUpload(f"The multipart part '{part}' is required.", field=part)
        module, _, name = self.parser.partition(":")
        function: Parser = getattr(importlib.import_module(module), name)
        return function({part: parts[part] for part in self.required_parts + self.optional_parts if part in parts})


FORMATS: dict[Format, UploadFormat] = {
    f.format: f
    for f in (
        UploadFormat(Format.FILE_CSV, Source.CUSTOM, ("file",), (), "services.core.imports.csv_metadata:parse",
                     queued=True),
        UploadFormat(Format.FILE_JSONL, Source.CUSTOM, ("resources_file",), ("lineages_file",),
                     "services.core.imports.jsonl_metadata:parse", queued=True),
        UploadFormat(Format.DBT_CORE, Source.DBT_CORE, ("manifest", "run_results"), (),
                     "services.core.imports.dbt_artifacts:parse", queued=False),
    )
}  # fmt: skip
