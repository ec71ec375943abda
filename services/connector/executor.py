"""Executes one run: load its context, crawl the source, diff, and report every step as an event."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg
import structlog

from services.connector.baseline import Baseline
from services.connector.diff import AssetDiff, Removal
from services.connector.lineage import ResolvedLineage, resolve
from services.connector.read_ahead import read_ahead
from services.connector.reporting import Reporter, ReportsLost, RunLedger, send_heartbeat
from services.connector.sources import open_source
from services.connector.sources.base import AssetDict, SourceError, SourcePlugin, SourceReport
from services.connector.sources.uploaded import UploadedSource
from services.core.crypto import CredentialCipher
from services.core.errors import DomainError
from services.core.objects import CrawlScope
from services.core.runs import DELETED_KEYS_PER_EVENT, RunStatus
from services.core.sources import Resolver, SystemResolver
from services.core.store import claims
from services.core.store import integrations as integration_store
from services.core.store import objects as object_store
from services.core.store import uploads as upload_store
from services.core.store.integrations import RunContext
from services.core.store.uploads import Upload
from shared.events import (
    AssetsChanged,
    AssetsChangedPayload,
    FinishedPayload,
    HeartbeatPayload,
    LineageReported,
    LineageReportedPayload,
    ProgressedPayload,
    RunCancelled,
    RunEnded,
    RunFailed,
    RunHeartbeat,
    RunOwner,
    RunProgressed,
    RunStarted,
    RunSucceeded,
    StartedPayload,
    UpsertChange,
    WarningsReported,
    WarningsReportedPayload,
    encode_bulk,
)
from shared.logging import redact_text
from shared.postgres import with_database

log = structlog.get_logger()

EDGES_PER_EVENT = 20_000  # lineage edges per LineageReported event (halved further if too large)
READ_AHEAD_BATCHES = 2  # crawl batches read from the source ahead of the one being diffed and reported
# How long a stopped crawl's read may hold on to a call (a driver finishing a network read) before it is let go and
# the source closed at its server, which ends the call.
READER_STOP_TIMEOUT_S = 2.0
# How long a plug-in may take to stop its work at the source (KILL QUERY, a query's DELETE, an abort) and close:
# a cancelled or failed run ends within seconds even when the source does not answer.
SOURCE_CLOSE_TIMEOUT_S = 10.0


class Phase(Enum):
    WAITING = "waiting"  # received, waiting for its turn: nothing claimed, safe to drop
    STARTING = "starting"  # claiming the run
    RUNNING = "running"  # claimed and executing: this instance owns the run


@dataclass
class RunHandle:
    """A run request on this connector; `cancel()` comes from the cancellation listener."""

    run_id: uuid.UUID
    task: asyncio.Task[None] | None = None
    phase: Phase = Phase.WAITING
    user_cancelled: bool = False
    requested_by: str | None = None

    def cancel(self, requested_by: str | None) -> None:
        self.user_cancelled = True
        self.requested_by = requested_by
        # Before it runs, the flag is enough: execute() checks it before claiming and after.
        if self.phase is Phase.RUNNING and self.task is not None:
            self.task.cancel()


@dataclass(frozen=True)
class ExecutorConfig:
    connector_id: str
    heartbeat_interval_s: float
    progress_interval_s: float
    allow_private_sources: bool
    run_timeout_s: float = 3600.0
    max_event_bytes: int = 4 * 1024 * 1024  # an asset batch larger than this is split (KAFKA_MAX_MESSAGE_BYTES / 2)
    resolver: Resolver = field(default_factory=SystemResolver)  # tests map names to 127.0.0.1


class _Run:
    def __init__(self, ctx: RunContext, owner: RunOwner, ledger: RunLedger) -> None:
        self.ctx = ctx
        self.owner = owner
        self.ledger = ledger
        self.diff = AssetDiff()
        self.secrets: tuple[str, ...] = ()
        self.report: SourceReport | None = None  # the plug-in's, once it is open
        self.warnings_sent = 0  # of the plug-in's report: how many warnings, and how many dropped, were reported
        self.dropped_sent = 0


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
        # Both wait out a database outage: the request stays uncommitted on Kafka meanwhile.
        ctx = await with_database(self._pool, lambda conn: integration_store.load_run_context(conn, handle.run_id))
        if ctx is None or ctx.run.status is not RunStatus.QUEUED or handle.user_cancelled:
            # Started elsewhere, finished, or cancelled before it started: nothing to do.
            log.info("run_skipped", run_id=str(handle.run_id), status=ctx.run.status.value if ctx else "unknown")
            return
        handle.phase = Phase.STARTING
        connector_id = self._config.connector_id
        attempt = await with_database(
            self._pool, lambda conn: claims.claim(conn, handle.run_id, connector_id, self._clock())
        )
        if attempt is None or handle.user_cancelled:
            log.info("run_not_claimed", run_id=str(handle.run_id), cancelled=handle.user_cancelled)
            return
        handle.phase = Phase.RUNNING
        structlog.contextvars.bind_contextvars(run_id=str(ctx.run.run_id), integration=ctx.run.integration_external_id)
        run = _Run(ctx, RunOwner(connector_id=connector_id, attempt=attempt), RunLedger(self._reporter))
        await run.ledger.send(RunStarted(**self._about(run), payload=StartedPayload(connector_id=connector_id,
                                                                                    attempt=attempt)))  # fmt: skip
        try:
            await run.ledger.confirm()  # no crawl (and no slot held for an hour) for a start nobody will see
        except ReportsLost as lost:
            # The run stays claimed and silent: the reaper ends it after HEARTBEAT_TIMEOUT_SECONDS.
            log.error("run_start_not_acknowledged", error=str(lost))
            return
        log.info("run_started", attempt=attempt)
        heartbeat = asyncio.create_task(self._heartbeats(run))
        try:
            await self._crawl_within_limit(run)
        except asyncio.CancelledError:
            if not handle.user_cancelled:
                await self._finish(run, RunFailed, f"The connector stopped during the run. {ctx.run.how_to_retry}")
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # a user's cancel ends the run here, as CANCELLED
            who = f" by {handle.requested_by}" if handle.requested_by else ""
            await self._finish(run, RunCancelled, f"Cancelled{who}.")
        except SourceError as error:
            await self._finish(run, RunFailed, redact_text(str(error), run.secrets))
        except ReportsLost as lost:
            await self._finish(run, RunFailed, f"Reporting to Kafka failed, so the run cannot succeed: {lost} "
                                               f"Once Kafka is healthy: {ctx.run.how_to_retry}")  # fmt: skip
        except Exception as error:  # any bug must still end the run, never leave it RUNNING
            log.exception("run_crashed")
            detail = redact_text(f"{type(error).__name__}: {error}", run.secrets)
            await self._finish(run, RunFailed, f"Internal connector error: {detail}")
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
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
        plugin = await self._open(ctx, credentials)
        run.report = plugin.report
        try:
            async with self._pool.acquire() as conn:
                scope = CrawlScope(ctx.run.scope, ctx.run.force_recursive,
                                   await object_store.is_active_overrides(conn, ctx.run.integration_id))  # fmt: skip
            # The source is read ahead while the store counts what it holds, and then while each batch is diffed.
            async with read_ahead(plugin.crawl(), READ_AHEAD_BATCHES, READER_STOP_TIMEOUT_S) as batches:
                async with Baseline.opened(self._pool, ctx.run.integration_id, scope) as baseline:
                    removal = await self._diff_crawl(run, batches, baseline, plugin.report)
            lineage = await self._send_lineage(run, plugin)
            await self._send_warnings(run, plugin.report)
        finally:
            await _close(plugin)
        await run.ledger.confirm()  # every asset batch arrived, or the run must not succeed
        counts = run.diff.counts
        message = f"Processed {counts.processed} assets: {counts.created} created, {counts.updated} updated, " \
                  f"{counts.deleted} deleted."  # fmt: skip
        if lineage.edges or lineage.unmatched:
            message += f" Lineage: {len(lineage.edges)} edges."
        if lineage.unmatched:
            message += f" {lineage.unmatched} external lineage references matched no resource and were skipped."
        if removal.withheld:
            message += " " + _withheld_message(removal, ctx)
        warnings = plugin.report.summary()
        await self._finish(run, RunSucceeded, message + (f" Warnings: {warnings}" if warnings else ""))
        log.info("run_succeeded", processed=counts.processed, created=counts.created, withheld=removal.withheld)

    async def _diff_crawl(
        self, run: _Run, batches: AsyncIterator[list[AssetDict]], baseline: Baseline, report: SourceReport
    ) -> Removal:
        """Report what the crawl's batches changed against the store as they come, then what disappeared (or why it
        was kept)."""
        scope = baseline.scope
        limited = not scope.everything  # a sub-path crawl, or inactive subtrees to leave alone
        last_progress = time.monotonic()
        async for batch in batches:
            if limited:
                batch = [asset for asset in batch if scope.covers(asset["key"])]
            changes = run.diff.add(batch, await baseline.previous([asset["key"] for asset in batch]))
            # New and changed assets in reports of their own: the log then says which keys a run created
            # (its changes stay readable after later runs changed the same assets).
            if changes.created:
                await self._send_assets(run, changes.created, [], "created")
            if changes.updated:
                await self._send_assets(run, changes.updated, [], "updated")
            if time.monotonic() - last_progress >= self._config.progress_interval_s:
                last_progress = time.monotonic()
                progress = ProgressedPayload(counts=run.diff.counts.to_payload())
                await run.ledger.send(RunProgressed(**self._about(run), payload=progress))
                await self._send_warnings(run, report)
        # An upload is the user's explicit, validated snapshot: whatever it lacks goes, whatever its share.
        removal = run.diff.finish(baseline.live, 100.0 if run.ctx.run.upload_id else run.ctx.fail_safe_threshold)
        if removal.applies:
            async for keys in baseline.gone(DELETED_KEYS_PER_EVENT):
                await self._send_assets(run, [], keys)
        return removal

    async def _open(self, ctx: RunContext, credentials: dict[str, Any]) -> SourcePlugin:
        """The run's plug-in: the stored upload it imports, or a connection to the source it crawls."""
        upload_id = ctx.run.upload_id
        if upload_id is None:
            return await open_source(
                ctx.source, ctx.configuration, credentials, allow_private=self._config.allow_private_sources,
                resolver=self._config.resolver,
            )  # fmt: skip

        async def load(conn: asyncpg.Connection) -> tuple[Upload | None, dict[str, bytes]]:
            return await upload_store.get(conn, upload_id), await upload_store.parts_of(conn, upload_id)

        upload, parts = await with_database(self._pool, load)
        if upload is None:
            raise SourceError("The upload this run imports is no longer stored; upload the file again.")
        return await UploadedSource.read(upload.format, parts)

    async def _send_assets(
        self, run: _Run, upserted: list[AssetDict], deleted: list[str], change: UpsertChange | None = None
    ) -> None:
        """AssetsChanged reports of upserted assets (all new, or all changed: `change`) or of deleted keys."""

        # The plug-in built each dict in the Asset shape: serialised as they are (encode_bulk), not validated or
        # copied into models (a third of the connector's time on a large catalog). The projector validates every
        # report at its edge, and the executor tests parse every emitted report against the contract.
        def payload(items: list[Any]) -> dict[str, Any]:
            return {"upserted": items if upserted else [], "deleted": [] if upserted else items, "change": change}

        envelope = AssetsChanged.model_construct(**self._about(run), payload=AssetsChangedPayload())
        await self._send_fitting(run, upserted or deleted, envelope, payload)

    async def _send_lineage(self, run: _Run, plugin: SourcePlugin) -> ResolvedLineage:
        """The plug-in's lineage with its ends resolved to assets, reported in LineageReported events."""
        edges = plugin.lineage()
        if not edges:
            return ResolvedLineage()
        resolved = await with_database(
            self._pool, lambda conn: resolve(conn, run.ctx.run.integration_id, run.ctx.owning_team_id, edges)
        )

        envelope = LineageReported.model_construct(**self._about(run), payload=LineageReportedPayload())
        for start in range(0, len(resolved.edges), EDGES_PER_EVENT):
            batch = resolved.edges[start : start + EDGES_PER_EVENT]
            await self._send_fitting(run, batch, envelope, lambda items: {"edges": items})
        return resolved

    async def _send_fitting(
        self,
        run: _Run,
        items: list[Any],
        envelope: AssetsChanged | LineageReported,
        payload: Callable[[list[Any]], dict[str, Any]],
    ) -> None:
        """One report of `items`, halved until it fits a Kafka message (huge view definitions exist). Each report
        has an envelope (an event id) of its own."""
        report = envelope.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": self._clock()})
        encoded = encode_bulk(report, payload(items))
        if len(encoded) > self._config.max_event_bytes and len(items) > 1:
            half = len(items) // 2
            await self._send_fitting(run, items[:half], envelope, payload)
            await self._send_fitting(run, items[half:], envelope, payload)
            return
        await run.ledger.send(report, encoded)

    async def _send_warnings(self, run: _Run, report: SourceReport) -> None:
        """The source's warnings since the last report, recorded on the run as they come (capped by the report)."""
        # Taken before sending: the source, read ahead, may warn again while this is sent.
        new, dropped = report.warnings[run.warnings_sent :], report.dropped
        if not new and dropped == run.dropped_sent:
            return
        payload = WarningsReportedPayload(warnings=new, dropped=dropped)
        await run.ledger.send(WarningsReported(**self._about(run), payload=payload))
        run.warnings_sent, run.dropped_sent = run.warnings_sent + len(new), dropped

    def _credentials(self, ctx: RunContext) -> dict[str, Any]:
        if ctx.credentials_enc is None:
            return {}
        try:
            return self._cipher.decrypt(ctx.credentials_enc)
        except DomainError as error:
            raise SourceError(error.detail) from None

    async def _finish(self, run: _Run, outcome: type[RunEnded], message: str) -> None:
        if outcome is not RunSucceeded and run.report is not None:
            # What the source warned of since the last report often explains the failure: recorded, if it can be.
            with contextlib.suppress(Exception):
                await self._send_warnings(run, run.report)
        payload = FinishedPayload(counts=run.diff.counts.to_payload(), message=message)
        await run.ledger.send(outcome(**self._about(run), payload=payload))
        try:
            await run.ledger.confirm()
        except ReportsLost as lost:
            # The outcome may not have arrived: heartbeats stop now, so the reaper ends the run.
            log.error("run_outcome_not_confirmed", error=str(lost))
        if outcome is not RunSucceeded:
            log.info("run_ended", outcome=outcome.__name__, message=message)

    async def _heartbeats(self, run: _Run) -> None:
        beat = HeartbeatPayload(connector_id=self._config.connector_id)
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s)
            await send_heartbeat(self._reporter, RunHeartbeat(**self._about(run), payload=beat))

    def _about(self, run: _Run) -> dict[str, Any]:
        """The envelope fields of a report of `run`, stamped now and with its owner (the fencing token)."""
        ctx = run.ctx.run
        return {
            "occurred_at": self._clock(),
            "integration_id": ctx.integration_id,
            "integration_external_id": ctx.integration_external_id,
            "run_id": ctx.run_id,
            "owner": run.owner,
        }


async def _close(plugin: SourcePlugin) -> None:
    """Close the run's source within SOURCE_CLOSE_TIMEOUT_S: the run's outcome never waits on a source that hangs
    (what is left of it at the source is logged)."""
    try:
        async with asyncio.timeout(SOURCE_CLOSE_TIMEOUT_S):
            await plugin.close()
    except TimeoutError:
        log.warning("source_close_timed_out", timeout_s=SOURCE_CLOSE_TIMEOUT_S)
    except Exception:
        log.exception("source_close_failed")


def _withheld_message(removal: Removal, ctx: RunContext) -> str:
    return (
        f"Fail-safe: {removal.withheld} of {removal.live_before} assets ({removal.withheld_percent:.1f}%) "
        f"disappeared from the source, more than this integration's failSafeThreshold of "
        f"{ctx.fail_safe_threshold:g}%, so none of them was marked deleted. That is usually a changed schema "
        f"filter or a revoked grant. If they were really removed, raise failSafeThreshold (PATCH "
        f'/api/integrations/{ctx.run.integration_external_id} with {{"failSafeThreshold": 100}}) and run again.'
    )
