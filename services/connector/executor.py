"""Executes one run: load its context, crawl the source, diff, and report every step as an event."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import structlog
from pydantic import BaseModel

from services.connector.diff import AssetDiff
from services.connector.sources import open_source
from services.connector.sources.base import SourceError, SourcePlugin
from services.core.crypto import CredentialCipher
from services.core.errors import DomainError
from services.core.runs import RunStatus
from services.core.sources import Resolver, SystemResolver
from services.core.store import integrations as integration_store
from services.core.store.integrations import RunContext
from shared.events import Envelope, EventType, RunFinished, RunHeartbeat, RunProgressed, RunStarted
from shared.logging import redact_text

log = structlog.get_logger()

MAX_EVENT_BYTES = 4 * 1024 * 1024  # well under the producer's and broker's 8 MiB message limit
DELETED_KEYS_PER_EVENT = 20_000


class Reporter(Protocol):
    """Where a connector's observations go (Kafka in production)."""

    async def emit(self, event: Envelope, encoded: bytes | None = None) -> None:
        """Send `event`; `encoded` is its `to_bytes()` when the caller already has it."""
        ...

    async def flush(self) -> None: ...


@dataclass
class RunHandle:
    """A run executing on this connector; `cancel()` comes from the cancellation listener."""

    run_id: uuid.UUID
    task: asyncio.Task[None] | None = None
    user_cancelled: bool = False
    requested_by: str | None = None

    def cancel(self, requested_by: str | None) -> None:
        self.user_cancelled = True
        self.requested_by = requested_by
        if self.task is not None:
            self.task.cancel()


@dataclass(frozen=True)
class ExecutorConfig:
    connector_id: str
    heartbeat_interval_s: float
    progress_interval_s: float
    allow_private_sources: bool
    run_timeout_s: float = 3600.0
    resolver: Resolver = field(default_factory=SystemResolver)  # tests map names to 127.0.0.1


@dataclass
class _Run:
    ctx: RunContext
    diff: AssetDiff = field(default_factory=lambda: AssetDiff({}))
    secrets: tuple[str, ...] = ()


class RunExecutor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        reporter: Reporter,
        cipher: CredentialCipher,
        config: ExecutorConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._pool = pool
        self._reporter = reporter
        self._cipher = cipher
        self._config = config
        self._clock = clock

    async def execute(self, handle: RunHandle) -> None:
        ctx = await self._load_context(handle.run_id)
        if ctx is None or ctx.run.status is not RunStatus.QUEUED:
            # Already started elsewhere, finished, or cancelled before it started: nothing to do.
            log.info("run_skipped", run_id=str(handle.run_id), status=ctx.run.status.value if ctx else "unknown")
            return
        structlog.contextvars.bind_contextvars(run_id=str(ctx.run.run_id), integration=ctx.run.integration_external_id)
        run = _Run(ctx)
        await self._emit(run, EventType.RUN_STARTED, RunStarted(connector_id=self._config.connector_id))
        await self._reporter.flush()
        log.info("run_started")
        heartbeat = asyncio.create_task(self._heartbeats(run))
        try:
            await self._crawl_within_limit(run)
        except asyncio.CancelledError:
            if not handle.user_cancelled:
                await self._finish(run, EventType.RUN_FAILED, "The connector stopped during the run; trigger it again.")
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # a user's cancel ends the run here
            who = f" by {handle.requested_by}" if handle.requested_by else ""
            await self._finish(run, EventType.RUN_CANCELLED, f"Cancelled{who}.")
        except SourceError as error:
            await self._finish(run, EventType.RUN_FAILED, redact_text(str(error), run.secrets))
        except Exception as error:  # any bug must still end the run, never leave it RUNNING
            log.exception("run_crashed")
            detail = redact_text(f"{type(error).__name__}: {error}", run.secrets)
            await self._finish(run, EventType.RUN_FAILED, f"Internal connector error: {detail}")
        finally:
            heartbeat.cancel()
            structlog.contextvars.unbind_contextvars("run_id", "integration")

    async def _crawl_within_limit(self, run: _Run) -> None:
        limit_s = self._config.run_timeout_s
        try:
            async with asyncio.timeout(limit_s) as limit:
                await self._crawl(run)
        except TimeoutError:
            if not limit.expired():
                raise  # a timeout inside the source, not ours
            raise SourceError(
                f"The run took longer than {limit_s:g}s and was stopped (CONNECTOR_RUN_TIMEOUT_SECONDS)."
            ) from None

    async def _crawl(self, run: _Run) -> None:
        ctx = run.ctx
        credentials = self._credentials(ctx)
        run.secrets = tuple(str(v) for v in credentials.values() if v)
        plugin: SourcePlugin = await open_source(
            ctx.source, ctx.configuration, credentials, allow_private=self._config.allow_private_sources,
            resolver=self._config.resolver,
        )  # fmt: skip
        try:
            async with self._pool.acquire() as conn:
                run.diff = AssetDiff(await integration_store.asset_fingerprints(conn, ctx.run.integration_id))
            last_progress = time.monotonic()
            async for batch in plugin.crawl():
                changed = run.diff.add(batch)
                if changed:
                    await self._emit_assets(run, changed, [])
                if time.monotonic() - last_progress >= self._config.progress_interval_s:
                    last_progress = time.monotonic()
                    await self._emit(run, EventType.RUN_PROGRESSED, RunProgressed(counts=run.diff.counts.to_payload()))
            gone = run.diff.finish()
            for start in range(0, len(gone), DELETED_KEYS_PER_EVENT):
                await self._emit_assets(run, [], gone[start : start + DELETED_KEYS_PER_EVENT])
        finally:
            await plugin.close()
        warnings = "; ".join(plugin.report.warnings)
        counts = run.diff.counts
        message = f"Processed {counts.processed} assets: {counts.created} created, {counts.updated} updated, " \
                  f"{counts.deleted} deleted." + (f" Warnings: {warnings}" if warnings else "")  # fmt: skip
        await self._finish(run, EventType.RUN_SUCCEEDED, message)
        log.info("run_succeeded", processed=counts.processed, created=counts.created)

    async def _emit_assets(self, run: _Run, upserted: list[dict[str, Any]], deleted: list[str]) -> None:
        """One AssetsChanged event, halved until it fits a Kafka message (huge view definitions exist)."""
        # Plain dicts: the plug-in built them in the Asset shape; re-validating 1000s per batch is waste.
        event = self._event(run, EventType.ASSETS_CHANGED, {"upserted": upserted, "deleted": deleted})
        encoded = event.to_bytes()
        if len(upserted) > 1 and len(encoded) > MAX_EVENT_BYTES:
            half = len(upserted) // 2
            await self._emit_assets(run, upserted[:half], deleted)
            await self._emit_assets(run, upserted[half:], [])
            return
        await self._reporter.emit(event, encoded)

    async def _load_context(self, run_id: uuid.UUID) -> RunContext | None:
        """Wait out a database outage: the request stays uncommitted on Kafka until this succeeds."""
        delay = 0.5
        while True:
            try:
                async with self._pool.acquire() as conn:
                    return await integration_store.load_run_context(conn, run_id)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as error:
                log.warning("run_context_unavailable", run_id=str(run_id), error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _credentials(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.credentials_enc is None:
            return {}
        try:
            return self._cipher.decrypt(ctx.credentials_enc)
        except DomainError as error:
            raise SourceError(error.detail) from None

    async def _finish(self, run: _Run, kind: EventType, message: str) -> None:
        await self._emit(run, kind, RunFinished(counts=run.diff.counts.to_payload(), message=message))
        await self._reporter.flush()
        if kind != EventType.RUN_SUCCEEDED:
            log.info("run_ended", status=kind.value, message=message)

    async def _heartbeats(self, run: _Run) -> None:
        beat = RunHeartbeat(connector_id=self._config.connector_id)
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s)
            await self._emit(run, EventType.RUN_HEARTBEAT, beat)

    async def _emit(self, run: _Run, kind: EventType, payload: BaseModel) -> None:
        await self._reporter.emit(self._event(run, kind, payload.model_dump()))

    def _event(self, run: _Run, kind: EventType, payload: dict[str, Any]) -> Envelope:
        ctx = run.ctx.run
        return Envelope(
            type=kind,
            occurred_at=self._clock(),
            integration_id=ctx.integration_id,
            integration_external_id=ctx.integration_external_id,
            run_id=ctx.run_id,
            payload=payload,
        )
