"""Settings every service shares, read from the environment (same names locally and in docker-compose)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ENVIRONMENTS = frozenset({"dev", "test"})


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # Production unless told otherwise: the dev-only defaults (e.g. the credentials key) must be opted into.
    environment: str = Field(default="production", alias="APP_ENV")
    database_url: str = Field(default="postgresql://postgres:ingest@127.0.0.1:5433/ingestion", alias="DATABASE_URL")
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_format: str = Field(default="auto", alias="LOG_FORMAT")  # auto | json | console

    @property
    def is_dev(self) -> bool:
        return self.environment in DEV_ENVIRONMENTS
