"""Reporting a run's observations to Kafka, with a delivery ledger per run.

A run may end SUCCESS only if the broker acknowledged every report it sent before (asset batches
above all): each run keeps its own pending deliveries, and `confirm()` says whether all arrived.
Heartbeats are fire-and-forget and never mix with a run's ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

import structlog

from shared import topics
from shared.events import ConnectorReport

log = structlog.get_logger()


class Producer(Protocol):
    """What the reporter needs of Kafka: shared.kafka.KafkaPublisher (a producer replaced on `reset`)."""

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]: ...

    async def reset(self) -> None: ...


class Reporter(Protocol):
    """Where a connector's observations go (Kafka in production, a recording fake in tests)."""

    async def send(self, report: ConnectorReport, encoded: bytes | None = None) -> Awaitable[Any]:
        """Queue `report` (`encoded` is its `to_bytes()` when the caller has it); await the result to confirm."""
        ...


class KafkaReporter:
    """Sends reports keyed by integration, so one integration's reports stay ordered.

    After a failed delivery the producer is replaced before the next send: aiokafka's idempotent producer
    does not recover from a rejected batch (every later batch of that partition fails), and one run's
    rejected report (e.g. too large for a managed cluster's topic) must not fail every later run."""

    def __init__(self, producer: Producer, topic: str = topics.CONNECTOR_REPORTS) -> None:
        self._producer = producer
        self._topic = topic
        self._generation = 0  # which producer instance a delivery belongs to
        self._broken = False
        self._resetting = asyncio.Lock()

    async def send(self, report: ConnectorReport, encoded: bytes | None = None) -> Awaitable[Any]:
        if self._broken:
            async with self._resetting:
                if self._broken:
                    log.warning("producer_replaced", reason="a delivery failed")
                    self._generation += 1
                    self._broken = False
                    await self._producer.reset()
        generation = self._generation
        delivery = await self._producer.send(
            self._topic, encoded or report.to_bytes(), key=str(report.integration_id).encode()
        )
        delivery.add_done_callback(lambda done: self._note(done, generation))
        return delivery

    def _note(self, delivery: asyncio.Future[Any], generation: int) -> None:
        if generation == self._generation and not delivery.cancelled() and delivery.exception() is not None:
            self._broken = True


class ReportsLost(Exception):
    """Some reports of a run were not acknowledged by the broker: the run must not succeed."""


class RunLedger:
    """The deliveries of one run's reports, confirmed before the run's outcome is reported."""

    MAX_PENDING = 256  # bounds memory and how far the crawl runs ahead of the broker

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._pending: list[asyncio.Future[Any]] = []
        self.sent = 0
        self.lost: list[str] = []

    async def send(self, report: ConnectorReport, encoded: bytes | None = None) -> None:
        try:
            delivery = await self._reporter.send(report, encoded)
        except Exception as error:  # refused before it was queued (e.g. too large, producer closed)
            self.lost.append(f"{type(error).__name__}: {error}")
            return
        self.sent += 1
        self._pending.append(asyncio.ensure_future(delivery))
        if len(self._pending) >= self.MAX_PENDING:
            await self._settle()

    async def confirm(self) -> None:
        """Wait for every pending delivery; raise ReportsLost if a report sent since the last confirm was lost."""
        await self._settle()
        lost, self.lost = self.lost, []
        if lost:
            raise ReportsLost(f"{len(lost)} of {self.sent} reports were not acknowledged by Kafka (first: {lost[0]})")

    async def _settle(self) -> None:
        pending, self._pending = self._pending, []
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                self.lost.append(f"{type(result).__name__}: {result}")


async def send_heartbeat(reporter: Reporter, beat: ConnectorReport) -> None:
    """Fire and forget: a lost heartbeat only matters if they all are, and the reaper handles that."""
    try:
        delivery = await reporter.send(beat)
    except Exception as error:
        log.warning("heartbeat_not_sent", error=str(error))
        return
    delivery_future = asyncio.ensure_future(delivery)
    delivery_future.add_done_callback(_log_heartbeat_failure)


def _log_heartbeat_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("heartbeat_not_acknowledged", error=str(future.exception()))
