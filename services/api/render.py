"""How every API response renders values that JSON lacks (one date format across all endpoints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a `Z`, as the Entropy Data API writes its date-times."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)  # UUIDs
