"""sslmode=verify-full while dialling a checked IP: the certificate is verified against the configured host name.

A local TLS-terminating proxy in front of the test server plays a PostgreSQL server with a certificate
from a test CA; the plug-in is configured with a name only the test knows and dials 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.connector.sources.base import SourceError
from tests.integration.test_postgres_source import crawl_all, source_for
from tests.support import SHOP_ASSETS, create_shop_database

pytestmark = pytest.mark.integration

HOST = "shop.db.example.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
                 ca: bool) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject))
        .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(path: Path, *parts: bytes) -> str:
    path.write_bytes(b"".join(parts))
    return str(path)


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("Test CA", key, _name("Test CA"), key, ca=True)
    directory = tmp_path_factory.mktemp("tls")
    _pem(directory / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return directory, key, cert


def server_context(test_ca: tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate], name: str) -> ssl.SSLContext:
    directory, ca_key, ca_cert = test_ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(name, key, ca_cert.subject, ca_key, ca=False)
    chain = _pem(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM),
                 key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    return context


@dataclass
class TlsProxy:
    """Answers PostgreSQL's SSLRequest with 'S', terminates TLS, and relays in clear to the real server."""

    context: ssl.SSLContext
    upstream_port: int
    server_names: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.sni_callback = lambda _obj, name, _ctx: self.server_names.append(name)  # type: ignore[assignment]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            await reader.readexactly(8)  # SSLRequest
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(self.context)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))
        writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def proxy_with(context: ssl.SSLContext, upstream: str) -> AsyncIterator[tuple[TlsProxy, int]]:
    proxy = TlsProxy(context, urlparse(upstream).port or 5432)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    try:
        yield proxy, server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture(scope="module")
async def shop(database: str) -> str:
    return await create_shop_database(database, "source_shop_tls_it")


async def test_verify_full_checks_the_certificate_against_the_configured_host_not_the_dialled_ip(
    shop, test_ca, monkeypatch
):
    monkeypatch.setenv("PGSSLROOTCERT", str(test_ca[0] / "ca.pem"))
    async with proxy_with(server_context(test_ca, HOST), shop) as (proxy, port):
        assets = await crawl_all(source_for(shop, host=HOST, port=port, sslmode="verify-full"))
    assert len(assets) == SHOP_ASSETS
    assert proxy.server_names and set(proxy.server_names) == {HOST}  # SNI names the host, not 127.0.0.1


async def test_verify_full_refuses_a_certificate_for_another_host(shop, test_ca, monkeypatch):
    monkeypatch.setenv("PGSSLROOTCERT", str(test_ca[0] / "ca.pem"))
    async with proxy_with(server_context(test_ca, "elsewhere.example.test"), shop) as (_, port):
        with pytest.raises(SourceError, match=r"Hostname mismatch|doesn't match"):
            await crawl_all(source_for(shop, host=HOST, port=port, sslmode="verify-full"))


async def test_verify_ca_accepts_the_test_cas_certificate_for_another_host(shop, test_ca, monkeypatch):
    monkeypatch.setenv("PGSSLROOTCERT", str(test_ca[0] / "ca.pem"))
    async with proxy_with(server_context(test_ca, "elsewhere.example.test"), shop) as (_, port):
        assets = await crawl_all(source_for(shop, host=HOST, port=port, sslmode="verify-ca"))
    assert len(assets) == SHOP_ASSETS


async def test_verify_ca_refuses_a_certificate_from_an_untrusted_ca(shop, test_ca, tmp_path, monkeypatch):
    other_ca = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("Other CA", other_ca, _name("Other CA"), other_ca, ca=True)
    monkeypatch.setenv("PGSSLROOTCERT", _pem(tmp_path / "other.pem", other.public_bytes(serialization.Encoding.PEM)))
    async with proxy_with(server_context(test_ca, HOST), shop) as (_, port):
        with pytest.raises(SourceError, match="certificate verify failed"):
            await crawl_all(source_for(shop, host=HOST, port=port, sslmode="verify-ca"))
