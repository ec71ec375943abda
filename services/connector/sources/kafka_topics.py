"""Kafka source: a cluster's topics (partitions, replication, retention, cleanup policy) over one broker connection.

Two kinds of request per crawl, whatever the number of topics: one Metadata request (every topic, its partitions
and replicas) and DescribeConfigs for the topics, `batch_size` topics a request, yielding each batch as it comes.

Where it connects: only to the addresses the bootstrap servers resolved to when they passed the SSRF check, never
to the brokers the cluster advertises in its metadata. A broker answers Metadata and topics' DescribeConfigs for the
whole cluster, so the one connection is enough; aiokafka's admin client would instead dial the advertised brokers
by name (resolved again, and checked by no one): a bootstrap server could then send the connector anywhere.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError, for_code
from aiokafka.protocol.admin import DescribeConfigsRequest
from aiokafka.protocol.metadata import MetadataRequest

from services.connector.sources.base import AssetDict, SourceError, SourceReport, selected, table_asset
from services.connector.sources.tls import pinned_tls_context
from services.core.imports import LineageEdge
from services.core.sources import CheckedAddresses
from services.core.sources.kafka import KafkaConfig, KafkaCredentials, password_with_sasl

TOPIC_RESOURCE = 2  # DescribeConfigs resource type of a topic (ConfigResourceType.TOPIC)
TOPIC_CONFIGS = ("retention.ms", "cleanup.policy")  # configuration, never statistics such as offsets or sizes
REQUEST_TIMEOUT_MS = 30_000
CLIENT_ID = "ingestion-connector"

# (configured host, port, address to dial): every checked address of every bootstrap server, in order.
Dial = tuple[str, int, str]


def topic_selected(name: str, include: list[str], exclude: list[str]) -> bool:
    if name.startswith("__"):  # Kafka's internal topics (__consumer_offsets, __transaction_state, ...)
        return False
    return selected(name, include, exclude)


class KafkaTopicsSource:
    def __init__(
        self, config: KafkaConfig, credentials: KafkaCredentials, dials: Sequence[Dial], batch_size: int = 1000
    ) -> None:
        self.config = config
        self.report = SourceReport()
        self._password = credentials.password
        self._dials = list(dials)
        self._batch_size = batch_size
        self._conn: AIOKafkaConnection | None = None
        self._at = ""  # host:port (address) of the connected broker, for messages

    @classmethod
    def create(
        cls, config: KafkaConfig, credentials: KafkaCredentials, addresses: CheckedAddresses
    ) -> KafkaTopicsSource:
        dials = [(host, port, address) for host, port in config.servers for address in addresses.of(host, port)]
        return cls(config, credentials, dials)

    def _who(self) -> str:
        return f" as '{self.config.username}'" if self.config.uses_sasl else ""

    async def _connect(self) -> AIOKafkaConnection:
        if self._conn is not None:
            return self._conn
        c = self.config
        if mismatch := password_with_sasl(c, KafkaCredentials(password=self._password)):  # stored before checked
            raise SourceError(f"{mismatch[0]}: {mismatch[1]}; update the integration's credentials.")
        failures = []
        for host, port, address in self._dials:
            at = f"{host}:{port}" + ("" if address == host else f" ({address})")
            try:
                self._conn = await create_conn(
                    address, port, client_id=CLIENT_ID, request_timeout_ms=REQUEST_TIMEOUT_MS,
                    security_protocol=c.security_protocol, ssl_context=self._tls(host),
                    sasl_mechanism=c.sasl_mechanism if c.uses_sasl else None,
                    sasl_plain_username=c.username, sasl_plain_password=self._password,
                )  # fmt: skip
            except SaslAuthenticationFailed as error:  # the same users on every broker: trying others cannot help
                raise SourceError(f"Kafka at {at} refused the SASL {c.sasl_mechanism} login{self._who()}: "
                                  f"{error}") from None  # fmt: skip
            except UnsupportedSaslMechanismError:
                raise SourceError(f"Kafka at {at} does not offer SASL {c.sasl_mechanism}; set saslMechanism to one "
                                  "its listener enables.") from None  # fmt: skip
            except (OSError, TimeoutError, KafkaError) as error:
                failures.append(f"{at}: {type(error).__name__}: {error}")
                continue
            self._at = at
            return self._conn
        raise SourceError(f"Cannot connect to Kafka{self._who()} ({c.security_protocol}): " + "; ".join(failures))

    def _tls(self, host: str) -> ssl.SSLContext | None:
        """TLS for SSL/SASL_SSL: dialled at a checked address, speaking to and verifying the configured host."""
        if self.config.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        return pinned_tls_context(host, verify_certificate=True, verify_hostname=True, cafile=None)

    async def _send(self, request: Any, what: str) -> Any:
        conn = await self._connect()
        try:
            return (await conn.send(request)).to_object()
        except (OSError, TimeoutError, KafkaError) as error:
            raise SourceError(f"Kafka at {self._at} did not answer {what}: {type(error).__name__}: {error}") from None

    async def _topics(self) -> list[dict[str, Any]]:
        metadata = await self._send(MetadataRequest(None), "the metadata request (the list of topics)")
        c = self.config
        return sorted(
            (t for t in metadata["topics"] if topic_selected(t["topic"], c.include_topics, c.exclude_topics)),
            key=lambda t: str(t["topic"]),
        )

    async def test_connection(self) -> None:
        """Connect and list the topics, as a crawl would."""
        await self._topics()

    def lineage(self) -> list[LineageEdge]:
        return []  # topics assert no lineage; producers and consumers are not read

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # fails any pending request at once: a cancelled crawl stops here
            self._conn = None

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        topics = await self._topics()
        if not topics:
            self.report.warn("No topic matched includeTopics/excludeTopics (internal topics, __*, are never crawled).")
        for start in range(0, len(topics), self._batch_size):
            chunk = topics[start : start + self._batch_size]
            configs = await self._configs([t["topic"] for t in chunk])
            yield [self._topic_asset(topic, configs.get(topic["topic"], {})) for topic in chunk]

    async def _configs(self, names: list[str]) -> dict[str, dict[str, str | None]]:
        response = await self._send(
            DescribeConfigsRequest([(TOPIC_RESOURCE, name, list(TOPIC_CONFIGS)) for name in names]),
            f"DescribeConfigs for {len(names)} topics",
        )
        found: dict[str, dict[str, str | None]] = {}
        for resource in response["resources"]:
            name = resource["resource_name"]
            if resource["error_code"]:
                self.report.warn(f"Topic {name}: its configuration cannot be read{self._who()} "
                                 f"({for_code(resource['error_code']).__name__}); retention and cleanup policy "
                                 "are left empty.")  # fmt: skip
                continue
            found[name] = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        return found

    def _topic_asset(self, topic: dict[str, Any], configs: dict[str, str | None]) -> AssetDict:
        name = topic["topic"]
        if topic["error_code"]:
            self.report.warn(f"Topic {name}: the broker reported {for_code(topic['error_code']).__name__} for it; "
                             "its partitions may be incomplete.")  # fmt: skip
        partitions = topic["partitions"]
        retention = configs.get("retention.ms")
        return table_asset(
            "", None, name, "table", nativeType="topic", partitions=len(partitions),
            replicationFactor=max((len(p["replicas"]) for p in partitions), default=0),
            retentionMs=int(retention) if retention is not None else None,  # -1: kept forever
            cleanupPolicy=configs.get("cleanup.policy"),
        )  # fmt: skip
