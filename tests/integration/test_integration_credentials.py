"""An editor cannot send the stored source password elsewhere: identity changes need the credentials again."""

from __future__ import annotations

import pytest

from services.core.crypto import CredentialCipher
from services.core.errors import InvalidInput
from services.core.integrations import IntegrationFields
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration


async def stored_credentials(pool, integration_id) -> dict:
    token = await pool.fetchval("SELECT credentials_enc FROM integrations WHERE id = $1", integration_id)
    return CredentialCipher.from_settings(None, is_dev=True).decrypt(token)


@pytest.mark.parametrize(
    "change",
    [{"host": "127.0.0.2"}, {"port": 6543}, {"database": "other"}, {"username": "admin"}, {"sslmode": "disable"},
     {"host": "127.0.0.2", "port": 6543}],
)  # fmt: skip
async def test_changing_where_or_as_whom_credentials_go_needs_the_credentials(integrations, make_integration, pool,
                                                                             change):  # fmt: skip
    integration = await make_integration()
    with pytest.raises(InvalidInput) as refused:
        await integrations.update(OWNER, integration.external_id, IntegrationFields(configuration=change))
    assert refused.value.field == "credentials"
    assert all(f"configuration.{name}" in refused.value.detail for name in change)
    assert "send `credentials`" in refused.value.detail
    unchanged = await integrations.get(OWNER, integration.external_id)
    assert unchanged.configuration == integration.configuration
    assert await stored_credentials(pool, integration.id) == {"password": "secret-pw"}


async def test_an_identity_change_with_new_credentials_is_saved(integrations, make_integration, pool):
    integration = await make_integration()
    changes = IntegrationFields(configuration={"host": "127.0.0.2", "username": "crawler"},
                                credentials={"password": "new-pw"})  # fmt: skip
    updated = await integrations.update(OWNER, integration.external_id, changes)
    assert (updated.configuration["host"], updated.configuration["username"]) == ("127.0.0.2", "crawler")
    assert await stored_credentials(pool, integration.id) == {"password": "new-pw"}


async def test_other_changes_keep_the_stored_credentials(integrations, make_integration, pool):
    integration = await make_integration()
    same_target = {"host": "127.0.0.1", "port": 5432, "includeSchemas": ["sales"], "excludeSchemas": ["pg_*"]}
    updated = await integrations.update(OWNER, integration.external_id, IntegrationFields(configuration=same_target))
    assert updated.configuration["includeSchemas"] == ["sales"]
    assert updated.configuration["excludeSchemas"] == ["pg_*"]
    assert await stored_credentials(pool, integration.id) == {"password": "secret-pw"}


TRINO_OVER_HTTP = {"host": "127.0.0.1", "port": 8080, "https": False, "username": "reader"}
KAFKA_WITH_SASL = {"bootstrapServers": "127.0.0.1:9092", "securityProtocol": "SASL_SSL", "username": "reader"}


@pytest.mark.parametrize(
    ("source", "configuration", "credentials", "says"),
    [("trino", TRINO_OVER_HTTP, {"password": "pw"}, "set configuration.https to true, or remove the password"),
     ("kafka", KAFKA_WITH_SASL, {}, "securityProtocol SASL_SSL needs the password of user 'reader'"),
     ("kafka", KAFKA_WITH_SASL, None, "securityProtocol SASL_SSL needs the password of user 'reader'")],
    ids=["trino-password-over-http", "kafka-sasl-empty-credentials", "kafka-sasl-no-credentials"],
)  # fmt: skip
async def test_configuration_and_credentials_that_contradict_each_other_are_refused_naming_the_field(
    make_integration, source, configuration, credentials, says
):
    with pytest.raises(InvalidInput) as refused:
        await make_integration(source=source, configuration=configuration, credentials=credentials)
    assert refused.value.field == "credentials.password"
    assert says in refused.value.detail


async def test_an_update_that_would_send_the_password_in_clear_is_refused_and_changes_nothing(
    integrations, make_integration, pool
):
    integration = await make_integration(source="trino", configuration=TRINO_OVER_HTTP | {"https": True},
                                         credentials={"password": "pw"})  # fmt: skip
    change = IntegrationFields(configuration={"https": False}, credentials={"password": "pw"})
    with pytest.raises(InvalidInput) as refused:
        await integrations.update(OWNER, integration.external_id, change)
    assert refused.value.field == "credentials.password"
    assert (await integrations.get(OWNER, integration.external_id)).configuration["https"] is True
    assert await stored_credentials(pool, integration.id) == {"password": "pw"}
