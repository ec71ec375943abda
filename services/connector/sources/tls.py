"""TLS for a connection dialled to a checked IP address, that still speaks to and verifies the configured host.

Drivers pass the address they dialled as the TLS server name. Plug-ins dial the IP that passed the SSRF
check (never the name again), so without this the certificate would be checked against the IP and
SNI-routed servers would not know which database is meant.
"""

from __future__ import annotations

import ssl


class _HostnamePinnedContext(ssl.SSLContext):
    """Every connection from this context sends SNI for, and verifies the certificate against, `hostname`."""

    hostname: str

    def wrap_bio(
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
        server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:  # fmt: skip
        # asyncio (and uvloop) build every client TLS connection through wrap_bio.
        return super().wrap_bio(incoming, outgoing, server_side, self.hostname, session)


def pinned_tls_context(
    hostname: str, *, verify_certificate: bool, verify_hostname: bool, cafile: str | None
) -> ssl.SSLContext:
    """A client context for `hostname`: with verification, against `cafile` or else the system's trust store."""
    context = _HostnamePinnedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.hostname = hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cafile:
        context.load_verify_locations(cafile=cafile)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = verify_hostname
    return context
