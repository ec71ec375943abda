"""Where a source connects, and whether it may: resolve each host once, check every address, dial only those.

The check and the connection must see the same addresses: a driver that resolved the name again could
be sent elsewhere by a DNS answer that changed in between (DNS rebinding). So the addresses that passed
are handed to the plug-in, which connects to them and never to the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.core.errors import InvalidInput
from shared.settings import DEV_ENVIRONMENTS

# NAT64 gateways translate these into the IPv4 address in the last 32 bits (RFC 6052); the local-use
# prefix (RFC 8215) has no fixed embedding and is never a public destination.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def private_sources_default(settings: dict[str, Any]) -> bool:
    """ALLOW_PRIVATE_SOURCES when unset: only development and test installations may reach private hosts."""
    return settings.get("environment") in DEV_ENVIRONMENTS


@dataclass(frozen=True)
class Endpoint:
    """A host and port a source connects to; `field` is the input that named the host (for error messages)."""

    host: str
    port: int
    field: str = "configuration.host"


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The IP addresses of `host`, in the order to try them; OSError if it has none."""
        ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), with a deadline: a hanging DNS server must not hang a run."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s

    async def resolve(self, host: str, port: int) -> list[str]:
        async with asyncio.timeout(self._timeout_s):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class CheckedAddresses:
    """The addresses each endpoint resolved to and that passed the policy: the only ones a plug-in may dial."""

    by_endpoint: Mapping[tuple[str, int], tuple[str, ...]]

    def of(self, host: str, port: int) -> tuple[str, ...]:
        try:
            return self.by_endpoint[(host, port)]
        except KeyError:
            raise LookupError(f"{host}:{port} was not checked: the source's spec must declare it") from None


def is_public_address(text: str) -> bool:
    """Whether connecting to `text` leaves the installation's own networks (not loopback/private/link-local/...)."""
    address = ipaddress.ip_address(text)
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL_USE:
            return False
        # An IPv6 address that carries an IPv4 one (6to4, NAT64) reaches that IPv4 host: judge it too.
        embedded = address.sixtofour
        if address in NAT64_WELL_KNOWN or int(address) >> 32 == 0:  # NAT64, or IPv4-compatible (::a.b.c.d)
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(str(embedded))
    return True


def checked_host(value: str) -> str:
    """A configured host (the validator of every platform's `host`): a name or an IP address, without scheme, port,
    path or spaces, and never a link-local literal."""
    if "/" in value or " " in value or (":" in value and not _ipv6_literal(value)):
        raise ValueError("host must be a host name or IP address, without scheme, port, path or spaces")
    if is_link_local_literal(value):
        raise ValueError(f"'{value}' is a link-local address (where cloud metadata services answer): a source "
                         "never connects there")  # fmt: skip
    return value


def _ipv6_literal(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value.split("%", 1)[0]), ipaddress.IPv6Address)
    except ValueError:
        return False


def is_link_local_literal(host: str) -> bool:
    """Whether `host` is an IP address literal in a link-local range (169.254.0.0/16, fe80::/10: where cloud
    metadata services answer). A name is not: what it resolves to is checked where it is resolved."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_link_local
    except ValueError:
        return False


async def check_endpoints(
    endpoints: Iterable[Endpoint], *, allow_private: bool, resolver: Resolver,
    rule: str = "public source hosts (ALLOW_PRIVATE_SOURCES=false)",
) -> CheckedAddresses:  # fmt: skip
    """Resolve each endpoint once; InvalidInput if one does not resolve or, unless allowed, is not public
    (`rule`: what this installation allows, for the message)."""
    checked: dict[tuple[str, int], tuple[str, ...]] = {}
    for endpoint in endpoints:
        try:
            addresses = tuple(await resolver.resolve(endpoint.host, endpoint.port))
        except OSError:  # gaierror, and TimeoutError from the resolver's deadline
            addresses = ()
        if not addresses:
            raise InvalidInput(f"host '{endpoint.host}' does not resolve", field=endpoint.field)
        if not allow_private:
            # Every answer, not just the first: a name may mix a public and a private address.
            for address in addresses:
                if not is_public_address(address):
                    raise InvalidInput(
                        f"host '{endpoint.host}' resolves to {address}, a non-public address; this installation "
                        f"only allows {rule}",
                        field=endpoint.field,
                    )
        # Link-local (where cloud metadata services answer) is never a source, whatever this installation allows.
        for address in addresses:
            if is_link_local_literal(address):
                raise InvalidInput(f"host '{endpoint.host}' resolves to {address}, a link-local address; a source "
                                   "never connects there", field=endpoint.field)  # fmt: skip
        checked[(endpoint.host, endpoint.port)] = addresses
    return CheckedAddresses(checked)
