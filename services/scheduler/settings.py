"""Scheduler settings from the environment, and the run log's retention policy (also read by `icp compact`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.retention import RetentionPolicy
from shared.settings import CommonSettings, ops_port


class RetentionSettings(BaseSettings):
    """How long the run log keeps the asset and lineage batches of finished runs (their counts are kept forever)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    keep_days: float = Field(default=30.0, alias="RUN_LOG_KEEP_DAYS", ge=0)
    keep_runs: int = Field(default=3, alias="RUN_LOG_KEEP_RUNS", ge=1)

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(keep_days=self.keep_days, keep_runs=self.keep_runs)


class SchedulerSettings(CommonSettings, RetentionSettings):
    ops_port: int = ops_port(9102)
    tick_interval_s: float = Field(default=1.0, alias="SCHEDULER_TICK_SECONDS", gt=0)
    heartbeat_timeout_s: float = Field(default=15.0, alias="HEARTBEAT_TIMEOUT_SECONDS", gt=0)
    queued_timeout_s: float = Field(default=600.0, alias="QUEUED_TIMEOUT_SECONDS", gt=0)
    # How often the run log is snapshotted and compacted; 0: never (then only `icp compact` does it).
    compact_interval_s: float = Field(default=86400.0, alias="RUN_LOG_COMPACT_INTERVAL_SECONDS", ge=0)
