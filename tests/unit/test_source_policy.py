"""The SSRF guard on source hosts: resolve once, refuse non-public answers, hand the checked ones on."""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.api.settings import ApiSettings
from services.connector.settings import ConnectorSettings
from services.core.errors import InvalidInput
from services.core.sources import SPECS, Endpoint, SourceSpec, SystemResolver, check_endpoints
from services.core.sources.endpoints import is_public_address
from tests.resolvers import PUBLIC_ADDRESS, MappedResolver


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.10", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::127.0.0.1", "::10.0.0.1", "2002:a00:1::1", "64:ff9b::a00:1",
     "64:ff9b:1::1", "224.0.0.1"],
)  # fmt: skip
async def test_names_resolving_to_non_public_addresses_are_refused_when_restricted(address):
    resolver = MappedResolver({"db.example.test": [address]})
    with pytest.raises(InvalidInput, match=re.escape(f"resolves to {address}, a non-public address")) as error:
        await check_endpoints([Endpoint("db.example.test", 5432)], allow_private=False, resolver=resolver)
    assert error.value.field == "configuration.host"


@pytest.mark.parametrize("address", [PUBLIC_ADDRESS, "2606:4700::1111", "2002:5db8:d70e::1", "64:ff9b::5db8:d70e"])
def test_public_addresses_pass_also_when_they_embed_a_public_ipv4_address(address):
    assert is_public_address(address)


async def test_one_private_answer_among_public_ones_is_enough_to_refuse():
    resolver = MappedResolver({"db.example.test": [PUBLIC_ADDRESS, "10.0.0.7"]})
    with pytest.raises(InvalidInput, match=re.escape("10.0.0.7")):
        await check_endpoints([Endpoint("db.example.test", 5432)], allow_private=False, resolver=resolver)


async def test_the_checked_addresses_are_the_resolvers_answers_from_one_lookup():
    resolver = MappedResolver({"db.example.test": [PUBLIC_ADDRESS, "2606:4700::1111"]})
    checked = await check_endpoints([Endpoint("db.example.test", 5432)], allow_private=False, resolver=resolver)
    assert checked.of("db.example.test", 5432) == (PUBLIC_ADDRESS, "2606:4700::1111")
    assert resolver.lookups == ["db.example.test"]
    with pytest.raises(LookupError, match="not checked"):
        checked.of("db.example.test", 5433)


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1"])
async def test_link_local_answers_are_refused_even_where_private_sources_are_allowed(address):
    resolver = MappedResolver({"metadata.test": [address]})  # a name, a bootstrap server, an endpoint URL's host
    with pytest.raises(InvalidInput, match="link-local") as refused:
        await check_endpoints([Endpoint("metadata.test", 80, field="configuration.endpoint")], allow_private=True,
                              resolver=resolver)  # fmt: skip
    assert refused.value.field == "configuration.endpoint"


async def test_private_answers_are_kept_when_private_sources_are_allowed():
    resolver = MappedResolver({"db.internal.test": ["127.0.0.1"]})
    checked = await check_endpoints([Endpoint("db.internal.test", 5432)], allow_private=True, resolver=resolver)
    assert checked.of("db.internal.test", 5432) == ("127.0.0.1",)


@pytest.mark.parametrize("allow_private", [True, False])
async def test_an_unresolvable_host_is_refused_naming_the_field(allow_private):
    with pytest.raises(InvalidInput, match=re.escape("'nowhere.test' does not resolve")) as error:
        await check_endpoints([Endpoint("nowhere.test", 1, field="configuration.server")],
                              allow_private=allow_private, resolver=MappedResolver({}))  # fmt: skip
    assert error.value.field == "configuration.server"


async def test_the_system_resolver_returns_an_ip_literal_as_is():
    assert await SystemResolver().resolve("127.0.0.1", 5432) == ["127.0.0.1"]


@pytest.mark.parametrize("settings_class", [ApiSettings, ConnectorSettings])
@pytest.mark.parametrize(("environment", "allowed"), [("production", False), ("staging", False), ("dev", True),
                                                      ("test", True)])  # fmt: skip
def test_private_sources_are_refused_by_default_outside_dev_and_test(settings_class, environment, allowed,
                                                                     monkeypatch):  # fmt: skip
    monkeypatch.delenv("ALLOW_PRIVATE_SOURCES", raising=False)
    assert settings_class(APP_ENV=environment).allow_private_sources is allowed


@pytest.mark.parametrize("settings_class", [ApiSettings, ConnectorSettings])
def test_an_explicit_allow_private_sources_wins_over_the_environment(settings_class, monkeypatch):
    monkeypatch.setenv("ALLOW_PRIVATE_SOURCES", "true")
    assert settings_class(APP_ENV="production").allow_private_sources is True
    monkeypatch.setenv("ALLOW_PRIVATE_SOURCES", "false")
    assert settings_class(APP_ENV="dev").allow_private_sources is False


HOSTED = [spec for spec in SPECS.values() if "host" in spec.config_model.model_fields]


@pytest.mark.parametrize("spec", HOSTED, ids=lambda spec: spec.name)
@pytest.mark.parametrize("host", ["169.254.169.254", "fe80::1", "https://db.example.com", "db.example.com:5432",
                                  "db example.com"])  # fmt: skip
def test_every_platform_refuses_the_same_bad_hosts(spec: SourceSpec[Any, Any], host: str) -> None:
    required = {name: "x" for name, field in spec.config_model.model_fields.items() if field.is_required()}
    with pytest.raises(InvalidInput) as refused:
        spec.parse_config(required | {"host": host})
    assert refused.value.field == "configuration.host"


@pytest.mark.parametrize("spec", HOSTED, ids=lambda spec: spec.name)
@pytest.mark.parametrize("host", ["db.example.com", "10.0.0.5", "::1", "2001:db8::1"])
def test_every_platform_takes_names_and_addresses(spec: SourceSpec[Any, Any], host: str) -> None:
    required = {name: "x" for name, field in spec.config_model.model_fields.items() if field.is_required()}
    assert spec.parse_config(required | {"host": host}).host == host
