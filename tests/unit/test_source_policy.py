"""The SSRF guard on user-supplied source hosts."""

import pytest

from services.core.errors import InvalidInput
from services.core.sources import check_host_allowed


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.10", "169.254.169.254", "::1"])
async def test_private_and_loopback_hosts_are_refused_when_restricted(host):
    with pytest.raises(InvalidInput, match="non-public address") as error:
        await check_host_allowed(host, 5432, allow_private=False)
    assert error.value.field == "configuration.host"


async def test_everything_is_allowed_for_local_use():
    await check_host_allowed("127.0.0.1", 5432, allow_private=True)


async def test_an_unresolvable_host_is_refused_when_restricted():
    with pytest.raises(InvalidInput, match="does not resolve"):
        await check_host_allowed("no-such-host.invalid", 5432, allow_private=False)
