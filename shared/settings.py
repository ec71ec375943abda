"""Settings every service shares, read from the environment (same names locally and in docker-compose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import topics

DEV_ENVIRONMENTS = frozenset({"dev", "test"})

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """How every producer, consumer and admin client reaches the brokers, and how our topics are laid out."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_security_protocol: SecurityProtocol = Field(default="PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: SaslMechanism = Field(default="PLAIN", alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(default=None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(default=None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: Path | None = Field(default=None, alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: Path | None = Field(default=None, alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: Path | None = Field(default=None, alias="KAFKA_SSL_KEYFILE")
    # The largest message we produce or fetch; topics we create accept it (max.message.bytes).
    kafka_max_message_bytes: int = Field(default=8 * 1024 * 1024, alias="KAFKA_MAX_MESSAGE_BYTES", ge=1024)
    # Producer-side compression of record batches. None by default: on loopback or a local network the CPU spent
    # compressing costs more than the bytes it saves (lz4 was 41% of the relay's time on a large crawl); zstd
    # where the network is the cost (a managed cluster in another region). Consumers decompress whatever comes.
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="none", alias="KAFKA_COMPRESSION"
    )
    # Used only when `python -m services.manage migrate` creates a topic; existing topics are left alone.
    kafka_topic_partitions: int = Field(default=topics.PARTITIONS, alias="KAFKA_TOPIC_PARTITIONS", ge=1)
    kafka_replication_factor: int = Field(default=topics.REPLICATION_FACTOR, alias="KAFKA_REPLICATION_FACTOR", ge=1)
    kafka_min_insync_replicas: int = Field(default=topics.MIN_INSYNC_REPLICAS, alias="KAFKA_MIN_INSYNC_REPLICAS", ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                f"KAFKA_MIN_INSYNC_REPLICAS ({self.kafka_min_insync_replicas}) cannot exceed "
                f"KAFKA_REPLICATION_FACTOR ({self.kafka_replication_factor}): every write would be refused"
            )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate)")
        for name, path in (
            ("KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
            ("KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
            ("KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")


class CommonSettings(KafkaSettings):
    # Production unless told otherwise: the dev-only defaults (e.g. the credentials key) must be opted into.
    environment: str = Field(default="production", alias="APP_ENV")
    database_url: str = Field(default="postgresql://postgres:ingest@127.0.0.1:5433/ingestion", alias="DATABASE_URL")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_format: str = Field(default="auto", alias="LOG_FORMAT")  # auto | json | console
    # Where /livez, /readyz and /metrics listen (the port: OPS_PORT, each service's own default).
    ops_host: str = Field(default="127.0.0.1", alias="OPS_HOST")
    # The nice value the background services (connector, projector, relay, notifier, scheduler) lower their CPU
    # priority to at start, so that the API answers promptly while a large crawl keeps every core busy (measured by
    # `make bench`'s load scenario). Only ever lowered: a process started at a higher nice value keeps it. 0: none.
    worker_niceness: int = Field(default=10, alias="WORKER_NICENESS", ge=0, le=19)

    @property
    def is_dev(self) -> bool:
        return self.environment in DEV_ENVIRONMENTS


def ops_port(default: int) -> Any:
    """OPS_PORT, with a default per service so that every process of `make run` gets its own port on one
    machine; 0 binds an ephemeral port (tests; the bound port is logged as `ops_serving`)."""
    return Field(default=default, alias="OPS_PORT", ge=0, le=65535)
