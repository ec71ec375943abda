"""Relay settings from the environment."""

from __future__ import annotations

from pydantic import Field

from services.relay.outbox_relay import BatchLimits
from shared.settings import CommonSettings


class RelaySettings(CommonSettings):
    # What one batch may put in flight at once; keep it below the broker's socket.request.max.bytes
    # (100 MiB by default). A single larger message still goes alone.
    batch_max_bytes: int = Field(default=BatchLimits.max_bytes, alias="RELAY_BATCH_MAX_BYTES", ge=1024)

    @property
    def batch_limits(self) -> BatchLimits:
        return BatchLimits(max_bytes=self.batch_max_bytes)
