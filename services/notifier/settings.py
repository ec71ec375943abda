"""Notifier settings from the environment."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from pydantic import Field, field_validator

from services.core.sources import private_sources_default
from services.notifier.targets import Network, TargetPolicy
from shared.settings import CommonSettings, ops_port


class NotifierSettings(CommonSettings):
    ops_port: int = ops_port(9106)
    credentials_key: str | None = Field(default=None, alias="CREDENTIALS_KEY")  # decrypts the signing secrets
    # May webhooks go to private (internal) addresses? Apart from ALLOW_PRIVATE_SOURCES: sources on a private
    # network must not open it to every team's webhooks. Default like sources: only under APP_ENV dev/test.
    allow_private_targets: bool = Field(default_factory=private_sources_default, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    # Comma-separated CIDRs every delivery must stay inside (e.g. an egress proxy's subnet); empty: any allowed.
    allowed_networks: str = Field(default="", alias="WEBHOOK_ALLOWED_NETWORKS")
    timeout_s: float = Field(default=10.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=120)
    max_attempts: int = Field(default=12, alias="WEBHOOK_MAX_ATTEMPTS", ge=1, le=100)
    # Attempt n waits min(max, initial * 2**(n-1) + jitter up to initial) after attempt n fails: with the
    # defaults about 10 s, 20 s, 40 s, ... capped at an hour; 12 attempts span roughly five hours.
    retry_initial_s: float = Field(default=10.0, alias="WEBHOOK_RETRY_INITIAL_SECONDS", gt=0)
    retry_max_s: float = Field(default=3600.0, alias="WEBHOOK_RETRY_MAX_SECONDS", gt=0)
    concurrency: int = Field(default=20, alias="WEBHOOK_CONCURRENCY", ge=1, le=1000)
    poll_interval_s: float = Field(default=1.0, alias="WEBHOOK_POLL_SECONDS", gt=0, le=60)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @property
    def target_policy(self) -> TargetPolicy:
        return TargetPolicy(self.allow_private_targets, _parse_networks(self.allowed_networks))

    @property
    def lease(self) -> timedelta:
        """How long a claimed attempt keeps its delivery: past its timeout, with room to record the outcome."""
        return timedelta(seconds=self.timeout_s + 5)


def _parse_networks(value: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"WEBHOOK_ALLOWED_NETWORKS: {error}") from None
