"""Our own endpoints for webhook subscriptions (/api/webhooks*) and their delivery log."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from services.api.context import deps, principal
from services.api.params import int_param, json_body, text_param, uuid_path
from services.api.problems import BadRequest
from services.api.render import iso
from services.core.crypto import CredentialCipher
from services.core.webhooks import Delivery, DeliveryPosition, NewWebhook, Webhook, WebhookFields, WebhookService

routes = web.RouteTableDef()


@dataclass(frozen=True)
class WebhookConfig:
    cipher: CredentialCipher  # the signing secrets are encrypted at rest like credentials
    allow_private_targets: bool


CONFIG = web.AppKey("webhook_config", WebhookConfig)


def _service(request: web.Request) -> WebhookService:
    config = request.config_dict[CONFIG]
    return WebhookService(deps(request).runtime, config.cipher, config.allow_private_targets)


def webhook_json(webhook: Webhook, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(webhook.id),
        "teamExternalId": webhook.team_external_id,
        "url": webhook.url,
        "events": webhook.events,
        "description": webhook.description,
        "enabled": webhook.enabled,
        "createdAt": iso(webhook.created_at),
        "updatedAt": iso(webhook.updated_at),
        "createdBy": webhook.created_by,
    }
    if secret is not None:
        body["secret"] = secret
        body["message"] = "Store this secret now: it is shown only once. Deliveries are signed with it."
    return body


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "eventId": str(delivery.event_id),
        "type": delivery.event_type,
        "runId": str(delivery.run_id),
        "integrationExternalId": delivery.integration_external_id,
        "status": delivery.status,
        "createdAt": iso(delivery.created_at),
        "deliveredAt": iso(delivery.delivered_at),
        "nextAttemptAt": iso(delivery.next_attempt_at),
        "attempts": [
            {"attempt": a.attempt, "startedAt": iso(a.started_at), "durationMs": a.duration_ms,
             "statusCode": a.status_code, "error": a.error}
            for a in delivery.attempts
        ],
    }  # fmt: skip


@routes.post("/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    webhook, secret = await _service(request).create(principal(request), await json_body(request, NewWebhook))
    return web.json_response(
        webhook_json(webhook, secret), status=201, headers={"Location": f"/api/webhooks/{webhook.id}"}
    )


@routes.get("/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    return web.json_response([webhook_json(w) for w in await _service(request).list_visible(principal(request))])


@routes.get("/webhooks/{webhookId}")
async def get_webhook(request: web.Request) -> web.Response:
    return web.json_response(
        webhook_json(await _service(request).get(principal(request), uuid_path(request, "webhookId")))
    )


@routes.patch("/webhooks/{webhookId}")
async def update_webhook(request: web.Request) -> web.Response:
    webhook_id = uuid_path(request, "webhookId")
    changes = await json_body(request, WebhookFields)
    webhook, secret = await _service(request).update(principal(request), webhook_id, changes)
    return web.json_response(webhook_json(webhook, secret))


@routes.delete("/webhooks/{webhookId}")
async def delete_webhook(request: web.Request) -> web.Response:
    await _service(request).delete(principal(request), uuid_path(request, "webhookId"))
    return web.Response(status=204)


@routes.get("/webhooks/{webhookId}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Newest first, `limit` a page; a `Link: <...after=...>; rel="next"` header while more follow."""
    webhook_id = uuid_path(request, "webhookId")
    limit = int_param(request, "limit", 50, 1, 200)
    after = _position(text_param(request, "after"))
    found, more = await _service(request).deliveries(principal(request), webhook_id, after, limit)
    headers = {}
    if more:
        last = found[-1]
        position = base64.urlsafe_b64encode(f"{last.created_at.isoformat()}|{last.id}".encode()).decode()
        headers["Link"] = f'<{request.url.update_query({"after": position})}>; rel="next"'
    return web.json_response([delivery_json(d) for d in found], headers=headers)


def _position(raw: str | None) -> DeliveryPosition | None:
    if raw is None:
        return None
    try:
        at, _, delivery_id = base64.urlsafe_b64decode(raw.encode("ascii")).decode().partition("|")
        position = datetime.fromisoformat(at), uuid.UUID(delivery_id)
    except (ValueError, UnicodeError):
        position = None
    if position is None or position[0].tzinfo is None:
        raise BadRequest("'after' is not a position from a Link header of this API; follow the Link as given.",
                         field="after")  # fmt: skip
    return position
