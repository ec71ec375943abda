"""How a run's logged events and changed assets look in our dialect (the timeline, its changes, live streams)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from services.api.problems import BadRequest
from services.api.render import iso
from services.core.store.timeline import AssetChange, LoggedEvent


def event_json(event: LoggedEvent) -> dict[str, Any]:
    """`details`: the payload as on the public run-events topic; for an asset or lineage batch, its counts."""
    return {
        "position": event.position,
        "seq": event.seq,
        "type": event.type,
        "occurredAt": iso(event.occurred_at),
        "ingestionRunId": str(event.run_id),
        "integrationExternalId": event.integration_external_id,
        "details": event.details,
    }


def change_json(change: AssetChange) -> dict[str, Any]:
    return {"key": change.key, "kind": change.kind, "change": change.change}


def changes_cursor(change: AssetChange) -> str:
    """The opaque position a next-page link carries: where the page's last change is in the run's log."""
    return base64.urlsafe_b64encode(".".join(map(str, change.position)).encode()).decode()


def parse_changes_cursor(raw: str | None) -> tuple[int, int, int]:
    if raw is None:
        return (0, 0, 0)
    try:
        seq, part, ordinal = (int(n) for n in base64.urlsafe_b64decode(raw.encode("ascii")).decode().split("."))
    except (ValueError, UnicodeError, binascii.Error):
        raise BadRequest("'after' is not a position from a Link header of this API; follow the Link as given.",
                         field="after") from None  # fmt: skip
    if min(seq, part, ordinal) < 0 or max(seq, part, ordinal) > 2**31 - 1:
        raise BadRequest("'after' is not a position from a Link header of this API.", field="after")
    return seq, part, ordinal
