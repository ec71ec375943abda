"""Opens a run's source: its platform spec parses the input, the endpoints are checked, the plug-in is built.

Plug-in modules (sources/<platform>.py) are imported here only when a run of that platform needs them.
"""

from __future__ import annotations

from typing import Any

from services.connector.sources.base import SourceError
from services.core.errors import DomainError
from services.core.model import Source
from services.core.sources import Resolver, SourcePlugin, check_endpoints, spec_for


async def open_source(
    source: Source, configuration: dict[str, Any], credentials: dict[str, Any], *, allow_private: bool,
    resolver: Resolver,
) -> SourcePlugin:  # fmt: skip
    """The plug-in of a run, bound to the addresses that passed the SSRF policy; SourceError if refused."""
    try:
        spec = spec_for(source)
        config = spec.parse_config(configuration)
        secrets = spec.parse_credentials(credentials)
    except DomainError as invalid:
        raise SourceError(f"The integration's stored settings are invalid ({invalid.detail}); update it.") from None
    try:
        # Checked again at run time, not only when saved: DNS answers and the policy may have changed since.
        addresses = await check_endpoints(spec.endpoints(config), allow_private=allow_private, resolver=resolver)
    except DomainError as refused:
        raise SourceError(f"Refused to connect to the source: {refused.detail}") from None
    return spec.plugin_factory()(config, secrets, addresses)
