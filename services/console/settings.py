"""Console settings from the environment."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # A Fernet key (urlsafe-base64, 32 bytes) that encrypts session cookies. Unset: a random key per process, so
    # a restart logs everyone out and several API replicas need the same key set here.
    session_key: SecretStr | None = Field(default=None, alias="CONSOLE_SESSION_KEY")
    session_hours: float = Field(default=8.0, alias="CONSOLE_SESSION_HOURS", gt=0, le=24 * 30)
