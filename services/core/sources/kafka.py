"""The Kafka source platform: a cluster's topics, reached through its bootstrap servers, optionally with SASL."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.core.model import Source
from services.core.sources.endpoints import Endpoint
from services.core.sources.spec import SourceSpec

DEFAULT_KAFKA_PORT = 9092
MAX_BOOTSTRAP_SERVERS = 20
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


def bootstrap_servers(value: str) -> list[tuple[str, int]]:
    """(host, port) of each server in "host:port,host:port" ("[v6 address]:port"; no port: 9092); ValueError why not."""
    servers = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            raise ValueError("bootstrapServers must be host:port pairs separated by commas, without empty entries")
        if "://" in item or "/" in item or " " in item:
            raise ValueError(f"'{item}' must be host:port, without scheme (such as SASL_SSL://), path or spaces")
        host, port = _host_and_port(item)
        servers.append((host, port))
    if len(servers) > MAX_BOOTSTRAP_SERVERS:
        raise ValueError(f"at most {MAX_BOOTSTRAP_SERVERS} bootstrap servers")
    return servers


def _host_and_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [2001:db8::1]:9092
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"'{item}' must be [IPv6 address]:port")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{item}' has no IPv6 address in its brackets") from None
        has_port, port_text = bool(rest), rest[1:]
    elif item.count(":") > 1:
        raise ValueError(f"'{item}': write an IPv6 address in brackets, as [address]:port")
    else:
        host, colon, port_text = item.partition(":")
        has_port = bool(colon)
    if not host:
        raise ValueError(f"'{item}' has no host")
    if not has_port:
        return host, DEFAULT_KAFKA_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"'{item}' has no valid port (1-65535)")
    return host, int(port_text)


class KafkaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    bootstrap_servers: str = Field(
        min_length=1, max_length=2000, alias="bootstrapServers",
        description="Brokers to connect to, as host:port separated by commas (the cluster's bootstrap address). "
        "The crawl connects only to these, never to the brokers the cluster advertises.",
    )  # fmt: skip
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", alias="securityProtocol",
        description="As Kafka's security.protocol: SSL and SASL_SSL verify the broker's certificate against the "
        "system's trust store and the host name of the bootstrap server.",
    )  # fmt: skip
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", alias="saslMechanism", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL only)."
    )
    username: str | None = Field(
        default=None, min_length=1, max_length=255, validate_default=True,
        description="SASL user name: required with SASL_PLAINTEXT and SASL_SSL, not allowed without SASL. "
        "It needs Describe and DescribeConfigs on the topics.",
    )  # fmt: skip
    include_topics: list[str] = Field(
        default_factory=list, alias="includeTopics", description="Glob patterns of topics to crawl; empty: all."
    )
    exclude_topics: list[str] = Field(
        default_factory=list, alias="excludeTopics", description="Glob patterns of topics to skip (after include)."
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in bootstrap_servers(value))

    @field_validator("username")
    @classmethod
    def _username_with_sasl(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("security_protocol")
        if protocol is None:  # the protocol itself is invalid: that error is the one to show
            return value
        if protocol in SASL_PROTOCOLS and value is None:
            raise ValueError(f"username is required with securityProtocol {protocol} (and credentials.password)")
        if protocol not in SASL_PROTOCOLS and value is not None:
            raise ValueError(f"username is only sent with securityProtocol SASL_PLAINTEXT or SASL_SSL, not {protocol}")
        return value

    @property
    def servers(self) -> list[tuple[str, int]]:
        return bootstrap_servers(self.bootstrap_servers)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in SASL_PROTOCOLS


class KafkaCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="Password of `username`: required with SASL, not sent without it. Without SASL send `{}`.",
    )  # fmt: skip


def kafka_endpoints(config: KafkaConfig) -> list[Endpoint]:
    return [Endpoint(host, port, field="configuration.bootstrapServers") for host, port in config.servers]


def password_with_sasl(config: KafkaConfig, credentials: KafkaCredentials) -> tuple[str, str] | None:
    if config.uses_sasl and credentials.password is None:
        return ("credentials.password", f"securityProtocol {config.security_protocol} needs the password of user "
                f"'{config.username}'")  # fmt: skip
    return None


KAFKA = SourceSpec(
    source=Source.KAFKA,
    config_model=KafkaConfig,
    credentials_model=KafkaCredentials,
    # The protocol and mechanism too: SASL_PLAINTEXT or PLAIN instead of SASL_SSL or SCRAM would hand the stored
    # password to anyone on the path (PLAIN sends it as it is; SCRAM never does).
    identity_fields=("bootstrap_servers", "security_protocol", "sasl_mechanism", "username"),
    endpoints=kafka_endpoints,
    plugin="services.connector.sources.kafka_topics:KafkaTopicsSource.create",
    mismatch=password_with_sasl,
)
