"""Application functions for webhook subscriptions: create, read, change, delete, and their deliveries.

A subscription is owned like an integration: by a team (notified of that team's integrations' runs) or, without
one, by the organization (every run; organization-owner keys only). Keys see and change exactly the
subscriptions whose integrations they would see and change; anything else is a 404 (view) or a 403 (edit).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from services.core.crypto import CredentialCipher
from services.core.errors import Forbidden, InvalidInput, NotFound
from services.core.ingestion import Runtime
from services.core.model import Principal
from services.core.sources import Endpoint, Resolver, SystemResolver, check_endpoints
from services.core.sources.endpoints import is_link_local_literal
from services.core.store import access as access_store
from services.core.store import webhooks as store
from services.core.store.webhooks import Delivery as Delivery  # re-exported for the API
from services.core.store.webhooks import Webhook as Webhook

SECRET_PREFIX = "whsec_"
MAX_URL_LENGTH = 2000


class WebhookEvent(StrEnum):
    """What a subscription can be notified of: how a run ended. A reaped run is run.reaped, not run.failed."""

    RUN_FAILED = "run.failed"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_CANCELLED = "run.cancelled"
    RUN_REAPED = "run.reaped"


def _check_url(value: str) -> str:
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"the URL must be at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError("the URL must not contain spaces or control characters (percent-encode them)")
    try:
        parts = urlsplit(value)
        _ = parts.port  # a ValueError for a port out of range or not a number
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the URL must start with http:// or https://, got scheme '{parts.scheme or '(none)'}'")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        # They would be shown back on every read; the signature is how a receiver authenticates us.
        raise ValueError("the URL must not contain a user name or password; verify the signature instead")
    if parts.fragment:
        raise ValueError("the URL must not contain a fragment ('#...')")
    return value


WebhookUrl = Annotated[str, AfterValidator(_check_url)]


def _each_once(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return list(dict.fromkeys(events))


class WebhookFields(BaseModel):
    """Changeable fields, every one optional (PATCH). `rotateSecret`: issue a new secret, shown once."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: WebhookUrl | None = None
    events: list[WebhookEvent] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=1000)
    enabled: bool | None = None
    rotate_secret: bool = Field(default=False, alias="rotateSecret")

    @field_validator("events")
    @classmethod
    def _each_event_once(cls, events: list[WebhookEvent] | None) -> list[WebhookEvent] | None:
        return _each_once(events) if events is not None else None


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: WebhookUrl
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WebhookEvent), min_length=1)
    description: str | None = Field(default=None, max_length=1000)
    enabled: bool = True
    team_external_id: str | None = Field(default=None, alias="teamExternalId")

    @field_validator("events")
    @classmethod
    def _each_event_once(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        return _each_once(events)


DeliveryPosition = tuple[datetime, uuid.UUID]


class WebhookService:
    def __init__(
        self, rt: Runtime, cipher: CredentialCipher, allow_private_targets: bool, resolver: Resolver | None = None
    ) -> None:
        self._rt = rt
        self._cipher = cipher
        self._allow_private = allow_private_targets
        self._resolver = resolver or SystemResolver()

    async def create(self, principal: Principal, spec: NewWebhook) -> tuple[Webhook, str]:
        """The new subscription and its signing secret (shown this once)."""
        async with self._rt.pool.acquire() as conn:  # who may subscribe is decided before the URL is looked up
            await self._team_for(conn, principal, spec.team_external_id)
        await self._check_target(spec.url)
        secret = new_secret()
        async with self._rt.pool.acquire() as conn, conn.transaction():
            team_id = await self._team_for(conn, principal, spec.team_external_id)
            webhook_id = self._rt.new_id()
            await store.insert(
                conn, webhook_id, team_id, spec.url, [e.value for e in spec.events], spec.description, spec.enabled,
                self._cipher.encrypt({"secret": secret}), principal.name,
            )  # fmt: skip
            created = await store.get(conn, webhook_id)
        assert created is not None
        return created, secret

    async def list_visible(self, principal: Principal) -> list[Webhook]:
        async with self._rt.pool.acquire() as conn:
            return await store.list_visible(conn, principal.org_owner, principal.team_ids)

    async def get(self, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
        async with self._rt.pool.acquire() as conn:
            return await _visible(conn, principal, webhook_id)

    async def update(
        self, principal: Principal, webhook_id: uuid.UUID, changes: WebhookFields
    ) -> tuple[Webhook, str | None]:
        """The changed subscription, and its new secret if one was asked for."""
        if changes.url is not None:
            async with self._rt.pool.acquire() as conn:  # who may change it is decided before the URL is looked up
                await _editable(conn, principal, webhook_id)
            await self._check_target(changes.url)
        values: dict[str, object] = {}
        if changes.url is not None:
            values["url"] = changes.url
        if "description" in changes.model_fields_set:  # null clears it
            values["description"] = changes.description
        if changes.enabled is not None:
            values["enabled"] = changes.enabled
        if changes.events is not None:
            values["events"] = [e.value for e in changes.events]
        secret = new_secret() if changes.rotate_secret else None
        if secret is not None:
            values["secret_enc"] = self._cipher.encrypt({"secret": secret})
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await _editable(conn, principal, webhook_id)
            await store.update(conn, webhook_id, values)
            updated = await store.get(conn, webhook_id)
        assert updated is not None
        return updated, secret

    async def delete(self, principal: Principal, webhook_id: uuid.UUID) -> None:
        """Delete a subscription with its deliveries (those not yet delivered are dropped)."""
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await _editable(conn, principal, webhook_id)
            await store.delete(conn, webhook_id)

    async def deliveries(
        self, principal: Principal, webhook_id: uuid.UUID, after: DeliveryPosition | None, limit: int
    ) -> tuple[list[Delivery], bool]:
        """One keyset page of the subscription's deliveries, newest first, with their attempts; and if more follow."""
        async with self._rt.pool.acquire() as conn:
            await _visible(conn, principal, webhook_id)
            found = await store.list_deliveries(conn, webhook_id, after, limit + 1)
        return found[:limit], len(found) > limit

    async def _team_for(
        self, conn: asyncpg.Connection, principal: Principal, team_external_id: str | None
    ) -> uuid.UUID | None:
        if team_external_id is None:
            if not principal.org_owner:
                raise Forbidden(
                    "Only organization-owner keys can subscribe to every team's runs; name the team in "
                    "`teamExternalId`."
                )
            return None
        teams = await access_store.team_ids_by_external_id(conn, [team_external_id])
        if team_external_id not in teams:
            raise InvalidInput(f"Team '{team_external_id}' does not exist.", field="teamExternalId")
        if not principal.can_edit(teams[team_external_id]):
            raise Forbidden(f"This API key lacks INGESTION_EDIT on team '{team_external_id}'.")
        return teams[team_external_id]

    async def _check_target(self, url: str) -> None:
        """Unless this installation may deliver to private hosts, the URL must name a public one; a link-local
        address (cloud metadata services) never (the notifier checks again at every attempt: a name can resolve
        elsewhere later)."""
        parts = urlsplit(url)
        assert parts.hostname is not None  # checked by WebhookUrl
        if is_link_local_literal(parts.hostname):
            raise InvalidInput(f"'{parts.hostname}' is a link-local address: webhooks never go there.", field="url")
        if self._allow_private:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await check_endpoints(
            [Endpoint(parts.hostname, port, field="url")], allow_private=False, resolver=self._resolver,
            rule="public webhook hosts (WEBHOOK_ALLOW_PRIVATE_TARGETS=false)",
        )  # fmt: skip


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def _visible(conn: asyncpg.Connection, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
    webhook = await store.get(conn, webhook_id)
    if webhook is None or not principal.can_view(webhook.team_id):
        raise NotFound(f"Webhook '{webhook_id}' was not found, or this API key cannot see it.")
    return webhook


async def _editable(conn: asyncpg.Connection, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
    webhook = await _visible(conn, principal, webhook_id)
    if not principal.can_edit(webhook.team_id):
        needed = (
            f"INGESTION_EDIT on team '{webhook.team_external_id}'" if webhook.team_id else "an organization-owner key"
        )
        raise Forbidden(f"Changing this webhook needs {needed}.")
    return webhook
