"""Relay settings from the environment."""

from __future__ import annotations

from pydantic import Field

from services.relay.outbox_relay import BatchLimits
from shared.settings import CommonSettings, ops_port


class RelaySettings(CommonSettings):
    # What one batch may put in flight at once; keep it below the broker's socket.request.max.bytes
    # (100 MiB by default). A single larger message still goes alone.
    batch_max_bytes: int = Field(default=BatchLimits.max_bytes, alias="RELAY_BATCH_MAX_BYTES", ge=1024)
    ops_port: int = ops_port(9105)
    # /readyz fails while the oldest unpublished outbox row is older than this (Kafka away, relay stuck).
    ready_max_outbox_age_s: float = Field(default=60.0, alias="RELAY_READY_MAX_OUTBOX_AGE_SECONDS", gt=0)

    @property
    def batch_limits(self) -> BatchLimits:
        return BatchLimits(max_bytes=self.batch_max_bytes)
