"""Connector settings from the environment."""

from __future__ import annotations

import os
import socket
import uuid

from pydantic import Field

from services.core.sources import private_sources_default
from shared.settings import CommonSettings, ops_port


class ConnectorSettings(CommonSettings):
    ops_port: int = ops_port(9103)
    # Unique per process, across restarts too (a container restarts with the same hostname and pid 1): a
    # restarted connector must never pass for the one whose claims and reports are still in flight.
    connector_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}", alias="CONNECTOR_ID"
    )
    credentials_key: str | None = Field(default=None, alias="CREDENTIALS_KEY")
    allow_private_sources: bool = Field(default_factory=private_sources_default, alias="ALLOW_PRIVATE_SOURCES")
    heartbeat_interval_s: float = Field(default=2.0, alias="HEARTBEAT_INTERVAL_SECONDS", gt=0)
    progress_interval_s: float = Field(default=1.0, alias="PROGRESS_INTERVAL_SECONDS", gt=0)
    run_timeout_s: float = Field(default=3600.0, alias="CONNECTOR_RUN_TIMEOUT_SECONDS", gt=0)
    max_concurrent_runs: int = Field(default=4, alias="CONNECTOR_MAX_CONCURRENT_RUNS", ge=1)
    # On SIGTERM running runs get this long to finish before they are ended FAILED.
    shutdown_grace_s: float = Field(default=10.0, alias="CONNECTOR_SHUTDOWN_GRACE_SECONDS", ge=0)
