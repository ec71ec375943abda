"""The run executor against a real source database, reporting into a fake of our Reporter protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlparse

import pytest

from services.connector.executor import ExecutorConfig, RunExecutor, RunHandle
from services.connector.reporting import KafkaReporter
from services.connector.sources.base import AssetDict, SourceError, SourceReport, make_asset
from services.core import ingestion
from services.core.crypto import CredentialCipher
from services.core.imports.formats import Format
from services.core.store import runlog
from services.core.uploads import UploadService
from shared.events import AssetsChanged, ConnectorReport, RunHeartbeat, WarningsReported, parse_report
from tests.integration.conftest import OWNER
from tests.integration.test_lineage import custom_integration
from tests.support import SHOP_ASSETS, SHOP_COUNTED, create_shop_database, eventually

pytestmark = pytest.mark.integration


class RecordingReporter:
    """Keeps every report as the projector would read it: the bytes sent, parsed back by the contract."""

    def __init__(self) -> None:
        self.events: list[ConnectorReport] = []

    async def send(self, report: ConnectorReport, encoded: bytes | None = None) -> asyncio.Future[None]:
        self.events.append(parse_report(encoded or report.to_bytes()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def types(self) -> list[str]:
        return [e.type for e in self.events if not isinstance(e, RunHeartbeat)]

    def log_events(self) -> list:
        return [e for e in self.events if not isinstance(e, RunHeartbeat)]


@pytest.fixture(scope="module")
async def source(database: str) -> str:
    return await create_shop_database(database, "source_executor_it")


def executor(pool, reporter, run_timeout_s: float = 60, connector_id: str = "test", max_event_bytes: int = 4 << 20):
    config = ExecutorConfig(connector_id=connector_id, heartbeat_interval_s=0.05, progress_interval_s=0.0,
                            allow_private_sources=True, run_timeout_s=run_timeout_s,
                            max_event_bytes=max_event_bytes)  # fmt: skip
    return RunExecutor(pool, reporter, CredentialCipher.from_settings(None, True), config, lambda: datetime.now(UTC))


async def postgres_integration(make_integration, dsn: str, password: str | None = None):
    url = urlparse(dsn)
    return await make_integration(
        configuration={"host": url.hostname, "port": url.port, "database": url.path.lstrip("/"),
                       "username": url.username, "sslmode": "disable"},
        credentials={"password": password or url.password},
    )  # fmt: skip


async def test_a_run_reports_start_assets_progress_and_success(runtime, pool, make_integration, source):
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    await executor(pool, reporter).execute(RunHandle(run.run_id))
    types = reporter.types()
    assert types[0] == "run.started.v1" and types[-1] == "run.succeeded.v1"
    assert "run.assets_changed.v1" in types and "run.progressed.v1" in types
    assert all(e.owner is not None and e.owner.connector_id == "test" for e in reporter.events)
    batches = [e.payload for e in reporter.events if isinstance(e, AssetsChanged)]
    assert sum(len(b.upserted) for b in batches) == SHOP_ASSETS  # the plain dicts match the published contract
    assert reporter.log_events()[-1].payload.counts.assets_created == SHOP_COUNTED
    # Applied to the log, the events end the run SUCCESS and fill the asset store.
    async with pool.acquire() as conn, conn.transaction():
        result = await runlog.append(conn, run.run_id, reporter.log_events())
        stored = await conn.fetchval("SELECT count(*) FROM assets WHERE integration_id = $1", integration.id)
    assert result.state is not None and result.state.status.value == "SUCCESS" and stored == SHOP_ASSETS


async def test_a_run_that_is_no_longer_queued_is_skipped(runtime, pool, make_integration, source):
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    await ingestion.cancel_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    await executor(pool, reporter).execute(RunHandle(run.run_id))
    assert reporter.events == []


async def test_a_source_error_fails_the_run_without_the_password(runtime, pool, make_integration, source):
    integration = await postgres_integration(make_integration, source, password="not-the-password-123")
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    await executor(pool, reporter).execute(RunHandle(run.run_id))
    assert reporter.types() == ["run.started.v1", "run.failed.v1"]
    message = reporter.events[-1].payload.message
    assert "Cannot connect to PostgreSQL" in message and "not-the-password-123" not in message


async def test_a_users_cancel_ends_the_run_cancelled(runtime, pool, make_integration, locked_source):
    integration = await postgres_integration(make_integration, locked_source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    handle = RunHandle(run.run_id)
    handle.task = asyncio.create_task(executor(pool, reporter).execute(handle))

    async def started() -> bool:
        return "run.started.v1" in reporter.types()

    await eventually(started, timeout=5)
    await asyncio.sleep(0.2)  # blocked on the locked view by now
    handle.cancel("alice")
    await asyncio.wait_for(handle.task, timeout=5)
    assert reporter.types()[-1] == "run.cancelled.v1"
    assert reporter.log_events()[-1].payload.message == "Cancelled by alice."
    assert any(isinstance(e, RunHeartbeat) for e in reporter.events)


@pytest.fixture
async def locked_source(source: str):
    import asyncpg

    blocker = await asyncpg.connect(source)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("LOCK TABLE sales.big_orders IN ACCESS EXCLUSIVE MODE")
    yield source
    await transaction.rollback()
    await blocker.close()


async def test_a_run_over_its_time_limit_fails_saying_so(runtime, pool, make_integration, locked_source):
    integration = await postgres_integration(make_integration, locked_source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    await asyncio.wait_for(executor(pool, reporter, run_timeout_s=0.5).execute(RunHandle(run.run_id)), timeout=10)
    assert reporter.types()[-1] == "run.failed.v1"
    assert "took longer than 0.5s" in reporter.log_events()[-1].payload.message


async def test_asset_batches_too_large_for_one_message_are_split(runtime, pool, make_integration, source):
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    await executor(pool, reporter, max_event_bytes=2000).execute(RunHandle(run.run_id))
    batches = [e for e in reporter.events if isinstance(e, AssetsChanged)]
    assert len(batches) > 3
    assert all(len(e.to_bytes()) <= 2000 or len(e.payload.upserted) == 1 for e in batches)
    keys = [a.key for e in batches for a in e.payload.upserted]
    assert len(keys) == len(set(keys)) == SHOP_ASSETS
    assert reporter.types()[-1] == "run.succeeded.v1"


async def test_two_connectors_given_the_same_run_start_it_once(runtime, pool, make_integration, source):
    """A rebalance can hand one request to two instances: the claim lets exactly one of them crawl."""
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporters = [RecordingReporter(), RecordingReporter()]
    await asyncio.gather(*(executor(pool, r, connector_id=f"c{i}").execute(RunHandle(run.run_id))
                           for i, r in enumerate(reporters)))  # fmt: skip
    started = [r for r in reporters if r.events]
    assert len(started) == 1, [r.types() for r in reporters]
    assert started[0].types()[0] == "run.started.v1" and started[0].types()[-1] == "run.succeeded.v1"


class FlakyProducer:
    """A producer whose broker never acknowledges the n-th asset batch (our MessageSender protocol)."""

    def __init__(self, fail_batch: int) -> None:
        self.fail_batch = fail_batch
        self.sent: list[ConnectorReport] = []
        self._batches = 0
        self.resets = 0

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        report = parse_report(value)
        self.sent.append(report)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if isinstance(report, AssetsChanged):
            self._batches += 1
            if self._batches == self.fail_batch:
                asyncio.get_running_loop().call_later(0.05, delivery.set_exception, TimeoutError("not acknowledged"))
                return delivery
        delivery.set_result(None)
        return delivery

    async def reset(self) -> None:
        self.resets += 1


async def test_a_run_with_an_unacknowledged_asset_batch_fails_instead_of_succeeding(
    runtime, pool, make_integration, source
):
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    producer = FlakyProducer(fail_batch=2)
    await executor(pool, KafkaReporter(producer), max_event_bytes=2000).execute(RunHandle(run.run_id))
    outcomes = [e for e in producer.sent if e.type in ("run.succeeded.v1", "run.failed.v1")]
    assert [e.type for e in outcomes] == ["run.failed.v1"]
    message = outcomes[0].payload.message
    assert "not acknowledged by Kafka" in message and "TimeoutError" in message


async def test_claiming_again_as_the_same_instance_keeps_the_claim(runtime, pool, make_integration):
    """A claim whose answer was lost is retried: the retry must not mistake its own claim for someone else's."""
    from services.core.store import claims

    integration = await make_integration()
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        assert await claims.claim(conn, run.run_id, "connector-a", now) == 1
        assert await claims.claim(conn, run.run_id, "connector-a", now) == 1
        assert await claims.claim(conn, run.run_id, "connector-b", now) is None


async def test_a_report_the_broker_rejects_does_not_break_reporting_for_later_runs(kafka_bootstrap):
    """aiokafka's idempotent producer stays broken after a rejected batch; the reporter replaces it."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.events import HeartbeatPayload, RunOwner
    from shared.kafka import KafkaPublisher, make_producer

    topic = f"test-small-{uuid.uuid4().hex[:8]}"  # a managed cluster's topic with a small message limit
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "4096"})])
    finally:
        await admin.close()
    publisher = KafkaPublisher(lambda: make_producer(kafka_bootstrap, client_id="test-reporter"))
    reporter = KafkaReporter(publisher, topic=topic)
    about = {"integration_id": uuid.uuid4(), "integration_external_id": "x", "run_id": uuid.uuid4(),
             "owner": RunOwner(connector_id="c", attempt=1)}  # fmt: skip
    huge = RunHeartbeat(**about, payload=HeartbeatPayload(connector_id=secrets.token_hex(20_000)))  # incompressible
    small = RunHeartbeat(**about, payload=HeartbeatPayload(connector_id="c"))
    try:
        await asyncio.wait_for(await reporter.send(small), timeout=30)  # the partition has a sequence now
        with pytest.raises(Exception, match=r"TooLarge"):
            await (await reporter.send(huge))
        for _ in range(3):  # later runs on the same partition still get through
            await asyncio.wait_for(await reporter.send(small), timeout=30)
    finally:
        await publisher.reset()


async def test_deletions_too_large_for_one_message_are_split(runtime, pool, make_integration, source):
    integration = await postgres_integration(make_integration, source)
    await succeed_earlier_run(runtime, integration, [f"db/gone/table_{i:04d}" for i in range(300)])
    async with pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET fail_safe_threshold = 100 WHERE id = $1", integration.id)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    await executor(pool, reporter, max_event_bytes=2000).execute(RunHandle(run.run_id))
    deletions = [e for e in reporter.events if isinstance(e, AssetsChanged) and e.payload.deleted]
    assert len(deletions) > 3 and all(len(e.to_bytes()) <= 2000 for e in deletions)
    assert sorted(k for e in deletions for k in e.payload.deleted) == [f"db/gone/table_{i:04d}" for i in range(300)]
    assert reporter.log_events()[-1].payload.counts.assets_deleted == 300


async def succeed_earlier_run(runtime, integration, keys: list[str]) -> None:
    """An earlier run that found `keys`, through the run log like any run (so rebuild reproduces it)."""
    from shared.events import AssetsChangedPayload, FinishedPayload, RunOwner, RunStarted, RunSucceeded, StartedPayload

    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    about = {"integration_id": run.integration_id, "integration_external_id": run.integration_external_id,
             "run_id": run.run_id, "owner": RunOwner(connector_id="earlier", attempt=1)}  # fmt: skip
    assets = [{"key": k, "kind": "table", "name": k, "fingerprint": "f"} for k in keys]
    events = [
        RunStarted(**about, payload=StartedPayload(connector_id="earlier")),
        AssetsChanged(**about, payload=AssetsChangedPayload.model_validate({"upserted": assets})),
        RunSucceeded(**about, payload=FinishedPayload.model_validate({"counts": {"assets_processed": len(keys)}})),
    ]
    async with runtime.pool.acquire() as conn, conn.transaction():
        await runlog.append(conn, run.run_id, events)


async def test_a_run_whose_start_is_not_acknowledged_is_not_crawled(runtime, pool, make_integration, source):
    """Nobody would see its progress or outcome: no crawl, no slot held; the reaper ends the claimed run."""

    class StartLost(FlakyProducer):
        async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
            delivery = await super().send(topic, value, key)
            if self.sent[-1].type == "run.started.v1":
                delivery = asyncio.get_running_loop().create_future()
                delivery.set_exception(TimeoutError("not acknowledged"))
            return delivery

    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    producer = StartLost(fail_batch=0)
    await executor(pool, KafkaReporter(producer)).execute(RunHandle(run.run_id))
    assert [e.type for e in producer.sent] == ["run.started.v1"]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT connector_id FROM run_claims WHERE run_id = $1", run.run_id) == "test"


def jsonl(*lines: dict) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def test_an_import_reports_its_snapshot_and_lineage_and_ignores_the_crawl_fail_safe(runtime, pool, integrations):
    """Each upload is a full snapshot: nine of ten dashboards missing from the next one go stale, though the
    integration's failSafeThreshold (20%) would withhold that for a crawl."""
    service = UploadService(runtime, integrations)
    integration = await custom_integration(integrations)
    tables = [{"entity_type": "dashboard", "databuilder_id": f"t{i}", "title": f"t{i}"} for i in range(10)]
    edge = {"from_identifier": {"type": "internal_resource", "databuilder_id": "t0"},
            "to_identifier": {"type": "internal_resource", "databuilder_id": "t1"}}  # fmt: skip

    async def imported(parts: dict[str, bytes]) -> RecordingReporter:
        accepted = await service.accept(OWNER, integration, Format.FILE_JSONL, parts)
        assert accepted.run is not None
        reporter = RecordingReporter()
        await executor(pool, reporter).execute(RunHandle(accepted.run.run_id))
        async with pool.acquire() as conn, conn.transaction():
            assert (await runlog.append(conn, accepted.run.run_id, reporter.log_events())).state.status.value == \
                "SUCCESS"  # fmt: skip
        return reporter

    first = await imported({"resources_file": jsonl(*tables), "lineages_file": jsonl(edge)})
    assert "run.lineage_reported.v1" in first.types()
    second = await imported({"resources_file": jsonl(tables[0])})
    ended = second.log_events()[-1]
    assert ended.payload.counts.assets_deleted == 9 and "Fail-safe" not in ended.payload.message
    async with pool.acquire() as conn:
        live = await conn.fetchval("SELECT count(*) FROM assets WHERE integration_id = $1 AND deleted_at IS NULL",
                                   integration.id)  # fmt: skip
        edges = await conn.fetchval("SELECT count(*) FROM lineage_edges WHERE integration_id = $1", integration.id)
    assert (live, edges) == (1, 0)  # the edge's run was replaced by one that asserts none


async def test_an_import_whose_upload_is_gone_fails_saying_to_upload_again(runtime, pool, integrations):
    service = UploadService(runtime, integrations)
    integration = await custom_integration(integrations)
    accepted = await service.accept(OWNER, integration, Format.FILE_CSV,
                                    {"file": b"database,schema,name,col_name\nshop,public,orders,id\n"})  # fmt: skip
    assert accepted.run is not None
    async with pool.acquire() as conn:  # e.g. pruned by an operator, or lost with a restored backup
        await conn.execute("DELETE FROM uploads WHERE id = $1", accepted.upload_id)
    reporter = RecordingReporter()
    await executor(pool, reporter).execute(RunHandle(accepted.run.run_id))
    assert reporter.types() == ["run.started.v1", "run.failed.v1"]
    assert "upload the file again" in reporter.log_events()[-1].payload.message


class WarnsThenFails:
    """A source that warns, then fails before any progress report could carry the warning."""

    def __init__(self) -> None:
        self.report = SourceReport()

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        self.report.warn("Schema hr: user 'reader' has no USAGE privilege on it")
        raise SourceError("permission denied for table payroll")
        yield []  # a generator

    async def close(self) -> None:
        pass


async def test_a_failed_run_still_records_the_warnings_its_source_gave_before_it_failed(
    runtime, pool, make_integration, source, monkeypatch
):
    # They often explain the failure; they used to go only with progress reports and success.
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    running = executor(pool, reporter)

    async def opened(*_: object) -> WarnsThenFails:
        return WarnsThenFails()

    monkeypatch.setattr(running, "_open", opened)
    await running.execute(RunHandle(run.run_id))
    assert reporter.types() == ["run.started.v1", "run.warnings_reported.v1", "run.failed.v1"]
    assert reporter.log_events()[1].payload.warnings == ["Schema hr: user 'reader' has no USAGE privilege on it"]


class HangsAtTheSource:
    """A source whose read never returns and whose close hangs too (a server that stopped answering)."""

    def __init__(self) -> None:
        self.report = SourceReport()
        self.closing = asyncio.Event()

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        await asyncio.Event().wait()
        yield []

    def lineage(self) -> list:
        return []

    async def close(self) -> None:
        self.closing.set()
        await asyncio.Event().wait()


async def test_a_cancel_ends_the_run_within_seconds_when_the_source_hangs_on_close(
    runtime, pool, make_integration, source, monkeypatch
):
    monkeypatch.setattr("services.connector.executor.SOURCE_CLOSE_TIMEOUT_S", 0.5, raising=False)
    hanging = HangsAtTheSource()
    handle, reporter = await started_with(hanging, runtime, pool, make_integration, source, monkeypatch)
    handle.cancel("alice")
    done, _ = await asyncio.wait({handle.task}, timeout=3)  # not wait_for: its own cancel would end the hang
    assert done and hanging.closing.is_set() and reporter.types()[-1] == "run.cancelled.v1"


async def started_with(
    plugin: object, runtime, pool, make_integration, source, monkeypatch
) -> tuple[RunHandle, RecordingReporter]:
    """A run of a new integration, executing with `plugin` as its source, once it has started."""
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = RecordingReporter()
    running = executor(pool, reporter)

    async def opened(*_: object) -> object:
        return plugin

    monkeypatch.setattr(running, "_open", opened)
    handle = RunHandle(run.run_id)
    handle.task = asyncio.create_task(running.execute(handle))

    async def started() -> bool:
        return "run.started.v1" in reporter.types()

    await eventually(started, timeout=5)
    return handle, reporter


class LetsGoOnlyWhenClosed:
    """A source whose read holds on through cancellation until it is closed at its server: a driver that finishes
    its network call first (an unbuffered MySQL cursor drains what is left), which KILL QUERY or Trino's DELETE end."""

    def __init__(self) -> None:
        self.report = SourceReport()
        self.closed = asyncio.Event()
        self.read_ended = asyncio.Event()

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        try:
            while not self.closed.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await self.closed.wait()
            yield []
        finally:
            self.read_ended.set()

    def lineage(self) -> list:
        return []

    async def close(self) -> None:
        self.closed.set()


async def test_a_cancel_closes_the_source_even_while_its_read_holds_on_and_the_run_ends_cancelled(
    runtime, pool, make_integration, source, monkeypatch
):
    holding = LetsGoOnlyWhenClosed()
    handle, reporter = await started_with(holding, runtime, pool, make_integration, source, monkeypatch)
    handle.cancel("alice")
    done, _ = await asyncio.wait({handle.task}, timeout=8)  # not wait_for: its own cancel would end the hold
    assert done and holding.closed.is_set() and reporter.types()[-1] == "run.cancelled.v1", reporter.types()
    await asyncio.wait_for(holding.read_ended.wait(), timeout=2)  # closed at its server, the read let go too


class SlowReporter(RecordingReporter):
    """Sending takes a few turns of the loop, as a real producer's does: the source, read ahead, goes on meanwhile."""

    async def send(self, report: ConnectorReport, encoded: bytes | None = None) -> asyncio.Future[None]:
        for _ in range(5):
            await asyncio.sleep(0)
        return await super().send(report, encoded)


class WarnsAsItGoes:
    """A source that warns as it reads each of its batches, its reads taking a varying number of turns of the loop
    (so some warnings come while the executor is sending the ones before)."""

    def __init__(self, batches: int) -> None:
        self.report = SourceReport()
        self.batches = batches

    async def crawl(self) -> AsyncIterator[list[AssetDict]]:
        for i in range(self.batches):
            for _ in range(i % 13):
                await asyncio.sleep(0)
            self.report.warn(f"warning {i}")
            yield [make_asset(f"db/s/t{i}", "table", f"t{i}", "db/s", {})]

    def lineage(self) -> list:
        return []

    async def close(self) -> None:
        pass


async def test_every_warning_of_a_source_read_ahead_is_reported_once(runtime, pool, make_integration, source,
                                                                      monkeypatch):  # fmt: skip
    integration = await postgres_integration(make_integration, source)
    run = await ingestion.trigger_run(runtime, OWNER, integration.external_id)
    reporter = SlowReporter()
    running = executor(pool, reporter)

    async def opened(*_: object) -> WarnsAsItGoes:
        return WarnsAsItGoes(batches=20)

    monkeypatch.setattr(running, "_open", opened)
    await running.execute(RunHandle(run.run_id))
    assert reporter.types()[-1] == "run.succeeded.v1"
    reported = [w for e in reporter.log_events() if isinstance(e, WarningsReported) for w in e.payload.warnings]
    assert reported == [f"warning {i}" for i in range(20)]
