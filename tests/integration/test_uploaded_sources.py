"""Platforms synced by uploads (custom, dbt Core): integrations with nothing to configure that are never crawled."""

from __future__ import annotations

import pytest

from services.core import ingestion
from services.core.errors import AlreadyRunning, Conflict, InvalidInput
from services.core.integrations import IntegrationService, NewIntegration
from services.core.store.integrations import IntegrationFilter
from tests.integration.conftest import OWNER

pytestmark = pytest.mark.integration


def custom(external_id: str, **extra: object) -> NewIntegration:
    body = {"externalId": external_id, "name": "Uploads", "source": "custom", "configuration": {}} | extra
    return NewIntegration.model_validate(body)


async def test_a_custom_integration_needs_no_credentials_and_refuses_a_crawl(runtime, integrations: IntegrationService):
    created = await integrations.create(OWNER, custom("uploads-1"))
    assert (created.source.value, created.configuration, created.has_credentials) == ("custom", {}, False)
    with pytest.raises(Conflict, match="not crawled") as refused:
        await ingestion.trigger_run(runtime, OWNER, "uploads-1")
    assert not isinstance(refused.value, AlreadyRunning)
    with pytest.raises(InvalidInput):
        await integrations.create(OWNER, custom("uploads-2", credentials={"password": "x"}))
    with pytest.raises(InvalidInput):
        await integrations.create(OWNER, custom("uploads-3", configuration={"host": "db"}))


async def test_listings_can_be_limited_to_the_platforms_a_dialect_shows(integrations: IntegrationService,
                                                                         make_integration):  # fmt: skip
    crawled = await make_integration()
    await integrations.create(OWNER, custom("uploads-listed"))
    shown, _ = await integrations.list_after(OWNER, None, 1000, sources=["postgres"])
    keys = {i.external_id for i in shown}
    assert crawled.external_id in keys and "uploads-listed" not in keys
    everything, _ = await integrations.list(OWNER, IntegrationFilter(), page=0, page_size=1000)
    assert "uploads-listed" in {i.external_id for i, _ in everything}
