"""The delivery worker: claims due deliveries, sends each signed, records every attempt, schedules retries.

Up to `concurrency` attempts are in flight at once, each within its own timeout, so one slow receiver
holds one slot, never the others. A failed attempt is due again after an exponential backoff with jitter
(tenacity's schedule), until the subscription's delivery gives up after `max_attempts`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import structlog
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from services.core.crypto import CredentialCipher
from services.core.errors import DomainError
from services.core.store import webhooks as store
from services.notifier.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header
from services.notifier.targets import TargetPolicy, check_literal
from shared.metrics import NOTIFIER

log = structlog.get_logger()
Clock = Callable[[], datetime]
USER_AGENT = "icp-notifier/1"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    initial_s: float
    max_s: float

    def next_attempt_at(self, attempt: int, now: datetime) -> datetime | None:
        """When to try again after attempt number `attempt` failed; None: it was the last."""
        if attempt >= self.max_attempts:
            return None
        wait = wait_exponential_jitter(multiplier=self.initial_s, max=self.max_s, jitter=self.initial_s)
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt
        return now + timedelta(seconds=wait(state))


class Sender:
    """One HTTP attempt of a delivery: the body as queued, signed now, never following a redirect."""

    def __init__(
        self, session: aiohttp.ClientSession, cipher: CredentialCipher, policy: TargetPolicy, timeout_s: float
    ) -> None:
        self._session = session
        self._cipher = cipher
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def attempt(self, claimed: store.Claimed) -> store.Outcome:
        started = time.monotonic()
        body = claimed.body.encode()
        try:
            secret = str(self._cipher.decrypt(claimed.secret_enc)["secret"])
            check_literal(self._policy, urlsplit(claimed.url).hostname or "")
            headers = {
                "Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: claimed.event_type,
                DELIVERY_HEADER: str(claimed.id), SIGNATURE_HEADER: signature_header(secret, int(time.time()), body),
            }  # fmt: skip
            async with self._session.post(
                claimed.url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                await response.content.read(64 * 1024)  # drained (up to a bound): the connection can be reused
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError, DomainError) as error:
            return store.Outcome(_ms(started), None, _describe(error), delivered=False)
        delivered = 200 <= status < 300
        return store.Outcome(_ms(started), status, None if delivered else f"HTTP {status}", delivered=delivered)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "TimeoutError: no answer within WEBHOOK_TIMEOUT_SECONDS"
    return f"{type(error).__name__}: {error}"[:1000]


@dataclass(frozen=True)
class Worker:
    pool: asyncpg.Pool
    sender: Sender
    retry: RetryPolicy
    lease: timedelta
    clock: Clock
    concurrency: int = 20
    poll_interval_s: float = 1.0

    async def run(self, wake: asyncio.Event) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                wake.clear()
                free = self.concurrency - len(in_flight)
                claimed = await self._claim(free) if free > 0 else []
                for delivery in claimed:
                    task = asyncio.create_task(self.deliver(delivery), name=f"webhook-delivery-{delivery.id}")
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claimed and len(claimed) == free:
                    continue  # more may be due: claim again once a slot frees
                woken = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait({woken, *in_flight}, timeout=self.poll_interval_s,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                finally:
                    woken.cancel()
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _claim(self, limit: int) -> list[store.Claimed]:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                return await store.claim_due(conn, self.clock(), limit, self.lease)
        except Exception as error:  # the database is away: try again at the next poll
            log.warning("webhook_claim_failed", error=f"{type(error).__name__}: {error}")
            return []

    async def deliver(self, claimed: store.Claimed) -> None:
        try:
            outcome = await self.sender.attempt(claimed)
        except Exception as error:  # a bug met this delivery: recorded on its attempt, and it ends like any failure
            log.error("webhook_attempt_crashed", delivery_id=str(claimed.id), exc_info=True)
            outcome = store.Outcome(0, None, _describe(error), delivered=False)
        now = self.clock()
        retry_at = None if outcome.delivered else self.retry.next_attempt_at(claimed.attempt, now)
        NOTIFIER.webhook_attempts.labels(
            "delivered" if outcome.delivered else "failed" if retry_at is not None else "gave_up"
        ).inc()
        log.log(
            logging.INFO if outcome.delivered else logging.WARNING,
            "webhook_delivered" if outcome.delivered else "webhook_attempt_failed",
            delivery_id=str(claimed.id), webhook_id=str(claimed.webhook_id), attempt=claimed.attempt,
            status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms,
            gave_up=not outcome.delivered and retry_at is None,
        )  # fmt: skip
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await store.record_outcome(conn, claimed, outcome, now, retry_at)
        except Exception as error:  # unrecorded: the lease runs out and the delivery is attempted again
            log.warning(
                "webhook_outcome_unrecorded", delivery_id=str(claimed.id), error=f"{type(error).__name__}: {error}"
            )
