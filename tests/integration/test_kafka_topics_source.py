"""The Kafka topics plug-in against the test broker: what a topic asset holds, scoping, the addresses it dials,
SASL, the validation of its configuration, and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic

from services.connector.sources.base import SourceError
from services.connector.sources.kafka_topics import KafkaTopicsSource
from services.core.errors import InvalidInput
from services.core.sources import CheckedAddresses
from services.core.sources.kafka import KAFKA, KafkaConfig, KafkaCredentials
from shared.kafka import make_admin
from tests.integration import test_postgres_tls as postgres_tls
from tests.sources.platforms.kafka import replace_topics

pytestmark = pytest.mark.integration

test_ca = postgres_tls.test_ca  # the fixture: a test CA's directory, key and certificate


def source_for(
    bootstrap: str, host: str | None = None, password: str | None = None, **config: Any
) -> KafkaTopicsSource:
    """The plug-in for the broker at `bootstrap` (127.0.0.1:port), configured as `host` (default: 127.0.0.1)."""
    address, port = bootstrap.split(":")
    assert address == "127.0.0.1"  # tests only ever connect to the local broker
    name = host or address
    parsed = KafkaConfig.model_validate({"bootstrapServers": f"{name}:{port}"} | config)
    checked = CheckedAddresses({(name, int(port)): (address,)})
    return KafkaTopicsSource.create(parsed, KafkaCredentials(password=password), checked)


async def crawl_all(source: KafkaTopicsSource) -> dict[str, dict[str, Any]]:
    assets: dict[str, dict[str, Any]] = {}
    try:
        async for batch in source.crawl():
            assets |= {asset["key"]: asset for asset in batch}
    finally:
        await source.close()
    return assets


@pytest.fixture(scope="module")
async def topics(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A prefix of this module's own, with three topics under it and an internal-looking one beside them."""
    prefix = f"it-topics-{uuid.uuid4().hex[:8]}."
    wanted = [
        NewTopic(
            f"{prefix}orders", 3, 1, topic_configs={"retention.ms": "3600000", "cleanup.policy": "compact,delete"}
        ),
        NewTopic(f"{prefix}payments", 2, 1),
        NewTopic(f"{prefix}audit.log", 1, 1, topic_configs={"retention.ms": "-1"}),
        NewTopic(f"__{prefix}internal", 1, 1),
    ]
    admin = make_admin(kafka_bootstrap, client_id="it-kafka-topics")
    await admin.start()
    try:
        await replace_topics(admin, [], wanted)
        yield prefix
        await admin.delete_topics([t.name for t in wanted])
    finally:
        await admin.close()


async def test_a_topic_is_a_table_at_the_root_with_its_partitions_replication_and_retention(kafka_bootstrap, topics):
    assets = await crawl_all(source_for(kafka_bootstrap, includeTopics=[f"{topics}*", f"__{topics}*"]))
    assert sorted(assets) == [f"{topics}audit.log", f"{topics}orders", f"{topics}payments"]  # never __*
    orders = assets[f"{topics}orders"]
    assert (orders["kind"], orders["parent_key"], orders["name"]) == ("table", "", f"{topics}orders")
    attributes = orders["attributes"]
    assert attributes["nativeType"] == "topic" and attributes["type"] == "table"
    assert (attributes["partitions"], attributes["replicationFactor"]) == (3, 1)
    assert (attributes["retentionMs"], attributes["cleanupPolicy"]) == (3_600_000, "compact,delete")
    assert assets[f"{topics}audit.log"]["attributes"]["retentionMs"] == -1  # kept forever
    payments = assets[f"{topics}payments"]["attributes"]
    assert (payments["partitions"], payments["cleanupPolicy"]) == (2, "delete")


async def test_messages_change_no_fingerprint_only_configuration_does(kafka_bootstrap, topics):
    before = await crawl_all(source_for(kafka_bootstrap, includeTopics=[f"{topics}*"]))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(f"{topics}payments", b"an offset moves")
    finally:
        await producer.stop()
    after = await crawl_all(source_for(kafka_bootstrap, includeTopics=[f"{topics}*"]))
    assert {k: a["fingerprint"] for k, a in after.items()} == {k: a["fingerprint"] for k, a in before.items()}


async def test_include_and_exclude_globs_scope_the_crawl(kafka_bootstrap, topics):
    only = await crawl_all(source_for(kafka_bootstrap, includeTopics=[f"{topics}o*", f"{topics}p*"],
                                      excludeTopics=["*payments"]))  # fmt: skip
    assert sorted(only) == [f"{topics}orders"]
    source = source_for(kafka_bootstrap, includeTopics=[f"{topics}nothing*"])
    assert await crawl_all(source) == {}
    assert "No topic matched" in source.report.warnings[0]


async def test_the_crawl_dials_the_checked_address_and_never_resolves_the_name(kafka_bootstrap, topics):
    # No resolver knows this name: the crawl works only if the plug-in connects to the checked address.
    assets = await crawl_all(source_for(kafka_bootstrap, host="kafka.invalid", includeTopics=[f"{topics}*"]))
    assert len(assets) == 3


async def test_it_tries_every_bootstrap_server_and_names_each_that_failed(kafka_bootstrap, topics):
    _, port = kafka_bootstrap.split(":")
    config = KafkaConfig.model_validate({"bootstrapServers": f"down.invalid:1,up.invalid:{port}",
                                         "includeTopics": [f"{topics}*"]})  # fmt: skip
    checked = CheckedAddresses({("down.invalid", 1): ("127.0.0.1",), ("up.invalid", int(port)): ("127.0.0.1",)})
    assert len(await crawl_all(KafkaTopicsSource.create(config, KafkaCredentials(), checked))) == 3

    with pytest.raises(SourceError, match=r"Cannot connect to Kafka \(PLAINTEXT\): down\.invalid:1 \(127\.0\.0\.1\)"):
        await crawl_all(source_for(kafka_bootstrap.replace(port, "1"), host="down.invalid"))


async def test_sasl_logs_in_and_a_wrong_password_is_named_without_the_password(sasl_listener, topics):
    bootstrap, user, password = sasl_listener
    sasl = {"securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN", "username": user}
    assert len(await crawl_all(source_for(bootstrap, password=password, includeTopics=[f"{topics}*"], **sasl))) == 3
    with pytest.raises(SourceError) as refused:
        await source_for(bootstrap, password="wrong-pw-0xbeef", **sasl).test_connection()
    assert f"refused the SASL PLAIN login as '{user}'" in str(refused.value)
    assert "wrong-pw-0xbeef" not in str(refused.value)
    scram = sasl | {"saslMechanism": "SCRAM-SHA-256"}  # the test listener enables PLAIN only
    with pytest.raises(SourceError, match=r"does not offer SASL SCRAM-SHA-256; set saslMechanism"):
        await source_for(bootstrap, password=password, **scram).test_connection()


async def test_sasl_without_a_password_says_which_credential_is_missing(sasl_listener):
    bootstrap, user, _ = sasl_listener
    source = source_for(bootstrap, securityProtocol="SASL_SSL", saslMechanism="SCRAM-SHA-512", username=user)
    with pytest.raises(SourceError, match=r"credentials\.password: securityProtocol SASL_SSL needs the password"):
        await source.test_connection()


class StallingBroker:
    """A proxy to the broker that passes the connection's first request (ApiVersions) and then answers nothing:
    a crawl connected to it waits in its Metadata request until it is cancelled."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.stalled = asyncio.Event()
        self.client_gone = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        broker_in, broker_out = await asyncio.open_connection("127.0.0.1", self.broker_port)
        try:
            broker_out.write(await _frame(client_in))
            client_out.write(await _frame(broker_in))
            await client_out.drain()
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await _frame(client_in)  # the next request, dropped
                self.stalled.set()
                await client_in.read()  # until the client closes the connection
        finally:
            self.client_gone.set()
            broker_out.close()
            client_out.close()


async def _frame(reader: asyncio.StreamReader) -> bytes:
    size = await reader.readexactly(4)
    return size + await reader.readexactly(struct.unpack(">i", size)[0])


async def test_cancelling_a_crawl_closes_its_connection_within_seconds(kafka_bootstrap):
    broker = StallingBroker(int(kafka_bootstrap.split(":")[1]))
    async with broker as port:
        source = source_for(f"127.0.0.1:{port}")
        crawl = asyncio.create_task(anext(source.crawl()))
        await asyncio.wait_for(broker.stalled.wait(), 10)  # connected, its Metadata request unanswered
        crawl.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await crawl
        await source.close()
        await asyncio.wait_for(broker.client_gone.wait(), 5)  # closed at the broker's end too
        assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("configuration", "field", "message"),
    [
        ({"bootstrapServers": "SASL_SSL://b.example:9092"}, "bootstrapServers", "without scheme"),
        ({"bootstrapServers": "b.example:9092,,c.example:9092"}, "bootstrapServers", "without empty entries"),
        ({"bootstrapServers": "b.example:0"}, "bootstrapServers", "no valid port"),
        ({"bootstrapServers": "2001:db8::1:9092"}, "bootstrapServers", "IPv6 address in brackets"),
        ({"bootstrapServers": "b.example:9092", "securityProtocol": "SASL_SSL"}, "username", "username is required"),
        ({"bootstrapServers": "b.example:9092", "username": "app"}, "username", "only sent with securityProtocol SASL"),
        ({"bootstrapServers": "b.example:9092", "securityProtocol": "TLS"}, "securityProtocol", "PLAINTEXT"),
        ({"bootstrapServers": "b.example:9092", "saslMechanism": "GSSAPI"}, "saslMechanism", "SCRAM-SHA-256"),
    ],
)
def test_an_invalid_configuration_names_its_field(configuration, field, message):
    with pytest.raises(InvalidInput) as invalid:
        KAFKA.parse_config(configuration)
    assert invalid.value.field == f"configuration.{field}"
    assert message in invalid.value.detail


def test_every_bootstrap_server_is_an_endpoint_of_the_ssrf_check():
    config = KAFKA.parse_config({"bootstrapServers": "a.example:9093, b.example,[2001:db8::1]:9094"})
    assert config.bootstrap_servers == "a.example:9093,b.example:9092,[2001:db8::1]:9094"  # stored normalized
    assert [(e.host, e.port, e.field) for e in KAFKA.endpoints(config)] == [
        ("a.example", 9093, "configuration.bootstrapServers"),
        ("b.example", 9092, "configuration.bootstrapServers"),
        ("2001:db8::1", 9094, "configuration.bootstrapServers"),
    ]


def test_where_and_as_whom_the_password_goes_are_identity_fields_and_the_password_is_secret():
    stored = {"bootstrapServers": "a.example:9093", "securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-512",
              "username": "app", "includeTopics": ["orders.*"]}  # fmt: skip
    downgraded = KAFKA.parse_config(stored | {"securityProtocol": "SASL_PLAINTEXT", "saslMechanism": "PLAIN"})
    assert KAFKA.changed_identity(stored, downgraded) == [
        "configuration.securityProtocol",
        "configuration.saslMechanism",
    ]
    assert KAFKA.changed_identity(stored, KAFKA.parse_config(stored | {"username": "other"})) == [
        "configuration.username"
    ]
    assert KAFKA.changed_identity(stored, KAFKA.parse_config(stored | {"includeTopics": []})) == []
    assert KAFKA.secret_fields == {"password"}
    assert KAFKA.parse_credentials({}).password is None  # no SASL, nothing secret: `{}`


class TlsBroker:
    """The test broker behind TLS: terminates it with a test CA's certificate, relays in clear, records SNI."""

    def __init__(self, context: ssl.SSLContext, broker_port: int) -> None:
        self.context = context
        self.broker_port = broker_port
        self.server_names: list[str | None] = []
        context.sni_callback = lambda _obj, name, _ctx: self.server_names.append(name)  # type: ignore[assignment]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
            await asyncio.gather(postgres_tls._relay(reader, up_writer), postgres_tls._relay(up_reader, writer))
        writer.close()


@contextlib.asynccontextmanager
async def tls_broker(context: ssl.SSLContext, kafka_bootstrap: str) -> AsyncIterator[tuple[TlsBroker, int]]:
    broker = TlsBroker(context, int(kafka_bootstrap.split(":")[1]))
    server = await asyncio.start_server(broker.handle, "127.0.0.1", 0, ssl=context)
    try:
        yield broker, server.sockets[0].getsockname()[1]
    finally:
        server.close()


TLS_HOST = "kafka.example.test"


async def test_ssl_verifies_the_configured_hosts_certificate_while_dialling_the_checked_address(
    kafka_bootstrap, topics, test_ca, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca[0] / "ca.pem"))  # the trust store, as OpenSSL reads it
    async with tls_broker(postgres_tls.server_context(test_ca, TLS_HOST), kafka_bootstrap) as (broker, port):
        source = source_for(f"127.0.0.1:{port}", host=TLS_HOST, securityProtocol="SSL", includeTopics=[f"{topics}*"])
        assert len(await crawl_all(source)) == 3
    assert set(broker.server_names) == {TLS_HOST}  # SNI names the host, not 127.0.0.1


async def test_ssl_refuses_a_certificate_for_another_host(kafka_bootstrap, test_ca, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(test_ca[0] / "ca.pem"))
    async with tls_broker(postgres_tls.server_context(test_ca, "elsewhere.example.test"), kafka_bootstrap) as (_, port):
        refused = (
            r"Cannot connect to Kafka \(SSL\): kafka\.example\.test:\d+ \(127\.0\.0\.1\).*(mismatch|doesn't match)"
        )
        with pytest.raises(SourceError, match=refused):
            await crawl_all(source_for(f"127.0.0.1:{port}", host=TLS_HOST, securityProtocol="SSL"))
