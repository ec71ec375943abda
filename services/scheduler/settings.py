"""Scheduler settings from the environment."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings, ops_port


class SchedulerSettings(CommonSettings):
    ops_port: int = ops_port(9102)
    tick_interval_s: float = Field(default=1.0, alias="SCHEDULER_TICK_SECONDS", gt=0)
    heartbeat_timeout_s: float = Field(default=15.0, alias="HEARTBEAT_TIMEOUT_SECONDS", gt=0)
    queued_timeout_s: float = Field(default=600.0, alias="QUEUED_TIMEOUT_SECONDS", gt=0)
