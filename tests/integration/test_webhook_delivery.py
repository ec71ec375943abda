"""Webhook deliveries through the real path: the run log, the outbox relay, the run-events topic, the notifier's
consumer and worker, to receivers on loopback that fail, hang or answer."""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.core import ingestion
from services.core.crypto import CredentialCipher
from services.core.errors import Forbidden, InvalidInput, NotFound
from services.core.ingestion import Runtime
from services.core.model import Integration, Principal
from services.core.store import access as access_store
from services.core.store.webhooks import Notification
from services.core.webhooks import NewWebhook, WebhookFields, WebhookService
from services.notifier.consumer import queue_notifications, run_consumer
from services.notifier.delivery import RetryPolicy, Sender, Worker
from services.notifier.notifications import delivery_id
from services.notifier.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from services.notifier.targets import GuardedResolver, TargetPolicy
from services.relay.outbox_relay import relay_once
from services.scheduler.reaper import reap_stale_runs
from shared import topics
from shared.kafka import KafkaPublisher, make_consumer, make_producer
from shared.process import Supervisor
from tests.support import eventually

pytestmark = pytest.mark.integration

CIPHER = CredentialCipher.from_settings(None, is_dev=True)
OWNER = Principal(key_id=uuid.uuid4(), name="owner", org_owner=True)
# Loopback only: a test never lets the notifier connect anywhere else.
LOOPBACK = TargetPolicy(allow_private=True, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),))


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers `statuses` in turn (then 200); `hang` holds requests until released."""

    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if self.hang:
            await self.released.wait()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Receiver], Awaitable[str]]]:
    servers: list[TestServer] = []

    async def start(receiver: Receiver) -> str:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/hook"))

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def notifier(pool, kafka_bootstrap) -> AsyncIterator[None]:
    """The notifier's consumer and worker in this process, with retries a fraction of a second apart."""
    consumer = make_consumer(kafka_bootstrap, topics.RUN_EVENTS, group_id=f"notifier-{uuid.uuid4()}", client_id="t")
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver(LOOPBACK)))
    worker = Worker(pool=pool, sender=Sender(session, CIPHER, LOOPBACK, timeout_s=5),
                    retry=RetryPolicy(max_attempts=5, initial_s=0.2, max_s=1), lease=timedelta(seconds=10),
                    clock=lambda: datetime.now(UTC), concurrency=4, poll_interval_s=0.1)  # fmt: skip
    wake = asyncio.Event()
    await consumer.start()
    try:
        async with Supervisor() as supervisor:
            supervisor.start("worker", worker.run(wake))
            supervisor.start("consumer", run_consumer(pool, consumer, wake, lambda: datetime.now(UTC)))
            yield
    finally:
        await consumer.stop()
        await session.close()


@pytest.fixture
async def team_integration(runtime: Runtime, make_integration) -> Integration:
    team = f"team-{uuid.uuid4().hex[:8]}"
    async with runtime.pool.acquire() as conn:
        await access_store.insert_team(conn, uuid.uuid4(), team, team)
    integration: Integration = await make_integration(owningTeamExternalId=team)
    return integration


async def end_run_reaped(runtime: Runtime, pool, kafka_bootstrap, integration: Integration) -> uuid.UUID:
    """A run no connector picks up, ended by the reaper an hour later, and published on RUN_EVENTS by the relay.
    Returns the id of its end event."""
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    much_later = Runtime(pool=pool, clock=lambda: datetime.now(UTC) + timedelta(hours=1), new_id=uuid.uuid4)
    await reap_stale_runs(much_later, heartbeat_timeout_s=30, queued_timeout_s=600)
    publisher = KafkaPublisher(lambda: make_producer(kafka_bootstrap, client_id="test-relay"))
    try:
        while await relay_once(pool, publisher):
            pass
    finally:
        await publisher.reset()
    async with pool.acquire() as conn:
        ended: uuid.UUID = await conn.fetchval(
            "SELECT event_id FROM run_events WHERE run_id = $1 AND type = 'run.failed.v1'", run.run_id
        )
    return ended


async def test_a_failing_receiver_gets_retries_with_one_delivery_id_each_signed_and_every_attempt_recorded(
    runtime, pool, kafka_bootstrap, serve, notifier, team_integration
):
    receiver = Receiver(statuses=[500, 503])
    service = WebhookService(runtime, CIPHER, allow_private_targets=True)
    spec = NewWebhook(url=await serve(receiver), teamExternalId=team_integration.owning_team_external_id)
    webhook, secret = await service.create(OWNER, spec)

    ended = await end_run_reaped(runtime, pool, kafka_bootstrap, team_integration)

    async def delivered() -> list | None:
        found, _ = await service.deliveries(OWNER, webhook.id, None, 10)
        return found if found and found[0].status == "DELIVERED" else None

    [delivery] = await eventually(delivered, timeout=30)
    assert delivery.id == delivery_id(webhook.id, ended) and delivery.event_type == "run.reaped"
    assert [(a.attempt, a.status_code, a.error) for a in delivery.attempts] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None)
    ]  # fmt: skip
    assert all(a.duration_ms is not None for a in delivery.attempts)
    assert len(receiver.requests) == 3
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1  # every attempt sends the bytes queued once
    for headers, body in receiver.requests:
        assert headers[DELIVERY_HEADER] == str(delivery.id)
        assert headers[EVENT_HEADER] == "run.reaped"
        assert verify(secret, headers[SIGNATURE_HEADER], body, now=time.time())
        assert not verify("whsec_another", headers[SIGNATURE_HEADER], body, now=time.time())
    assert b'"status":"FAILED"' in bodies.pop()

    # The same event read again (a redelivered message, another consumer) queues nothing: one delivery per event.
    again = Notification(event_id=ended, event_type="run.reaped", occurred_at=datetime.now(UTC), run_id=delivery.run_id,
                         integration_id=team_integration.id, integration_external_id=team_integration.external_id,
                         body="{}")  # fmt: skip
    assert await queue_notifications(pool, [again], datetime.now(UTC)) == 0


async def test_a_hanging_receiver_does_not_hold_up_another_subscription(
    runtime, pool, kafka_bootstrap, serve, notifier, team_integration
):
    slow, fast = Receiver(hang=True), Receiver()
    service = WebhookService(runtime, CIPHER, allow_private_targets=True)
    team = team_integration.owning_team_external_id
    await service.create(OWNER, NewWebhook(url=await serve(slow), teamExternalId=team))
    quick, _ = await service.create(OWNER, NewWebhook(url=await serve(fast), teamExternalId=team))

    await end_run_reaped(runtime, pool, kafka_bootstrap, team_integration)

    async def fast_delivered() -> bool:
        found, _ = await service.deliveries(OWNER, quick.id, None, 10)
        return bool(found) and found[0].status == "DELIVERED"

    await eventually(fast_delivered, timeout=30)
    assert len(slow.requests) == 1 and not slow.released.is_set()  # still held by the slow receiver
    slow.released.set()


async def test_subscriptions_of_other_teams_and_events_not_subscribed_to_are_not_notified(
    runtime, pool, kafka_bootstrap, serve, notifier, team_integration, make_integration
):
    ours, other_team, other_event = Receiver(), Receiver(), Receiver()
    service = WebhookService(runtime, CIPHER, allow_private_targets=True)
    team = team_integration.owning_team_external_id
    elsewhere = f"team-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        await access_store.insert_team(conn, uuid.uuid4(), elsewhere, elsewhere)
    mine, _ = await service.create(OWNER, NewWebhook(url=await serve(ours), teamExternalId=team))
    theirs, _ = await service.create(OWNER, NewWebhook(url=await serve(other_team), teamExternalId=elsewhere))
    failures_only, _ = await service.create(
        OWNER, NewWebhook(url=await serve(other_event), teamExternalId=team, events=["run.failed"])
    )

    await end_run_reaped(runtime, pool, kafka_bootstrap, team_integration)

    async def delivered() -> bool:
        found, _ = await service.deliveries(OWNER, mine.id, None, 10)
        return bool(found) and found[0].status == "DELIVERED"

    await eventually(delivered, timeout=30)
    # The consumer queues all of an event's deliveries in one transaction: had they any, they would exist by now.
    for webhook in (theirs, failures_only):
        assert (await service.deliveries(OWNER, webhook.id, None, 10))[0] == []
    assert other_team.requests == [] and other_event.requests == []


async def test_an_attempt_that_crashes_is_recorded_with_its_error_and_retried_until_the_delivery_fails(
    runtime, pool, kafka_bootstrap, serve, notifier, team_integration
):
    receiver = Receiver()
    service = WebhookService(runtime, CIPHER, allow_private_targets=True)
    spec = NewWebhook(url=await serve(receiver), teamExternalId=team_integration.owning_team_external_id)
    webhook, _ = await service.create(OWNER, spec)
    async with pool.acquire() as conn:  # a secret that decrypts to something without one: signing crashes
        await conn.execute("UPDATE webhooks SET secret_enc = $2 WHERE id = $1", webhook.id, CIPHER.encrypt({}))

    await end_run_reaped(runtime, pool, kafka_bootstrap, team_integration)

    async def gave_up() -> list | None:
        found, _ = await service.deliveries(OWNER, webhook.id, None, 10)
        return found if found and found[0].status == "FAILED" else None

    [delivery] = await eventually(gave_up, timeout=30)
    assert [a.attempt for a in delivery.attempts] == [1, 2, 3, 4, 5]  # the notifier fixture's max_attempts
    assert all(a.status_code is None and a.error == "KeyError: 'secret'" for a in delivery.attempts)
    assert receiver.requests == []


class CountingResolver:
    """Resolves every name to a private address, counting the lookups."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return ["10.1.2.3"]


async def test_who_may_subscribe_or_change_a_subscription_is_decided_before_its_url_is_looked_up(
    runtime, pool, team_integration
):
    # Else any key could learn what internal names resolve to from the error of a PATCH it may not make.
    resolver = CountingResolver()
    service = WebhookService(runtime, CIPHER, allow_private_targets=False, resolver=resolver)
    trusting = WebhookService(runtime, CIPHER, allow_private_targets=True)
    team = team_integration.owning_team_external_id
    webhook, _ = await trusting.create(OWNER, NewWebhook(url="http://127.0.0.1:1/hook", teamExternalId=team))
    async with pool.acquire() as conn:
        team_ids = await access_store.team_ids_by_external_id(conn, [team])
    viewer = Principal(
        uuid.uuid4(), "viewer", org_owner=False, team_permissions={team_ids[team]: frozenset({"INGESTION_VIEW"})}
    )
    stranger = Principal(key_id=uuid.uuid4(), name="stranger", org_owner=False)

    with pytest.raises(Forbidden):
        await service.update(viewer, webhook.id, WebhookFields(url="http://billing.internal/hook"))
    with pytest.raises(NotFound):
        await service.update(stranger, webhook.id, WebhookFields(url="http://billing.internal/hook"))
    with pytest.raises(Forbidden):
        await service.create(viewer, NewWebhook(url="http://billing.internal/hook", teamExternalId=team))
    assert resolver.lookups == []
    with pytest.raises(InvalidInput, match="WEBHOOK_ALLOW_PRIVATE_TARGETS"):  # the owner may: then it is looked up
        await service.update(OWNER, webhook.id, WebhookFields(url="http://billing.internal/hook"))
    assert resolver.lookups == ["billing.internal"]


async def test_a_link_local_url_is_refused_even_where_private_targets_are_allowed(runtime, team_integration):
    service = WebhookService(runtime, CIPHER, allow_private_targets=True)
    team = team_integration.owning_team_external_id
    with pytest.raises(InvalidInput, match="link-local"):
        await service.create(OWNER, NewWebhook(url="http://169.254.169.254/latest/meta-data", teamExternalId=team))
