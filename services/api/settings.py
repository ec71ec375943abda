"""API settings from the environment."""

from __future__ import annotations

from pydantic import Field

from services.core.sources import private_sources_default
from shared.settings import CommonSettings, ops_port


class ApiSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", alias="API_HOST")
    port: int = Field(default=8080, alias="API_PORT")
    ops_port: int = ops_port(9101)
    bootstrap_api_key: str | None = Field(default=None, alias="BOOTSTRAP_API_KEY")
    credentials_key: str | None = Field(default=None, alias="CREDENTIALS_KEY")
    allow_private_sources: bool = Field(default_factory=private_sources_default, alias="ALLOW_PRIVATE_SOURCES")
    # Webhook URLs are checked by their own policy (services/notifier/settings.py says why).
    allow_private_webhooks: bool = Field(default_factory=private_sources_default, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    db_pool_size: int = Field(default=20, alias="API_DB_POOL_SIZE")
    # How long a connector may try to reach a source when a connection is tested (the API waits 5 s more).
    connection_test_timeout_s: float = Field(default=10.0, alias="CONNECTION_TEST_TIMEOUT_SECONDS", gt=0, le=300)
