"""Where deliveries may connect: public addresses only, unless this installation may reach private ones.

The check runs on the addresses the connection will use (a resolver that refuses a name with any address
out of bounds), so a name that resolved to a public address at subscription time cannot be pointed at an
internal service later (DNS rebinding). `allowed_networks`, when given, narrows every target further.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from services.core.sources.endpoints import is_public_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(OSError):
    """The target resolves to an address this installation does not deliver to."""


@dataclass(frozen=True)
class TargetPolicy:
    allow_private: bool
    allowed_networks: Sequence[Network] = field(default_factory=tuple)

    def check(self, host: str, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone index (fe80::1%eth0) is not part of it
        if ip.is_link_local:  # cloud metadata services: never, whatever the installation may reach
            raise TargetRefused(f"'{host}' resolves to {address}, a link-local address")
        if self.allowed_networks and not any(ip in network for network in self.allowed_networks):
            raise TargetRefused(f"'{host}' resolves to {address}, outside WEBHOOK_ALLOWED_NETWORKS")
        if not self.allow_private and not is_public_address(str(ip)):
            raise TargetRefused(
                f"'{host}' resolves to {address}, a non-public address (WEBHOOK_ALLOW_PRIVATE_TARGETS=false)"
            )


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a name any of whose addresses the policy refuses."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            self._policy.check(host, result["host"])
        return results

    async def close(self) -> None:
        await self._resolver.close()


def check_literal(policy: TargetPolicy, host: str) -> None:
    """An IP address written in the URL never reaches a resolver: check it here."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    policy.check(host, host)
