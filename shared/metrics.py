"""Every Prometheus metric of every process, in one place: one registry per service, so each process's
/metrics shows its own metrics (and the process collectors), never another service's zeros.

Names start with `icp_`. Labels are bounded sets only (statuses, outcomes, route templates, partitions).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

# Crawls take seconds to an hour; HTTP requests milliseconds to the connection-test wait.
RUN_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, float("inf"))


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _consumer_lag(registry: CollectorRegistry) -> Gauge:
    return Gauge(
        "icp_consumer_lag_messages", "Messages of a partition this process has not fetched yet (highwater - position)",
        ["group", "topic", "partition"], registry=registry,
    )  # fmt: skip


def _dead_letters(registry: CollectorRegistry) -> Counter:
    return Counter("icp_dead_letters", "Messages set aside as dead letters, by where they came from", ["origin"],
                   registry=registry)  # fmt: skip


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = _registry()
        self.http_request_seconds = Histogram(
            "icp_http_request_duration_seconds", "HTTP requests by method, route template and status",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry,
        )  # fmt: skip


class SchedulerMetrics:
    def __init__(self) -> None:
        self.registry = _registry()
        self.schedule_fires = Counter("icp_schedule_fires", "Due schedules by outcome (fired, skipped_active, error)",
                                      ["outcome"], registry=self.registry)  # fmt: skip
        self.runs_reaped = Counter("icp_runs_reaped", "Runs the reaper ended (silent connector, never picked up)",
                                   registry=self.registry)  # fmt: skip
        self.runs = Gauge("icp_runs", "Runs in the database by status, source platform and trigger (read on scrape)",
                          ["status", "source", "trigger"], registry=self.registry)  # fmt: skip


class ConnectorMetrics:
    def __init__(self) -> None:
        self.registry = _registry()
        self.runs_in_flight = Gauge("icp_connector_runs_in_flight", "Runs this connector executes now",
                                    registry=self.registry)  # fmt: skip
        self.consumer_lag = _consumer_lag(self.registry)


class ProjectorMetrics:
    def __init__(self) -> None:
        self.registry = _registry()
        self.runs_finished = Counter(
            "icp_runs_finished", "Runs a connector's outcome ended, by status, kind and trigger",
            ["status", "kind", "trigger"], registry=self.registry,
        )  # fmt: skip
        self.run_seconds = Histogram("icp_run_duration_seconds", "From start to outcome, by status",
                                     ["status"], buckets=RUN_BUCKETS, registry=self.registry)  # fmt: skip
        self.assets_changed = Counter("icp_assets_changed", "Assets created, updated or deleted by successful runs",
                                      ["change"], registry=self.registry)  # fmt: skip
        self.events = Counter("icp_run_events", "Connector reports by what projection did with them "
                              "(applied, ignored, duplicate)", ["outcome"], registry=self.registry)  # fmt: skip
        self.dead_letters = _dead_letters(self.registry)
        self.consumer_lag = _consumer_lag(self.registry)
        self.caught_up_age = Gauge(
            "icp_projector_caught_up_age_seconds",
            "Since the projector last had applied everything of its least caught-up partition (read on scrape)",
            registry=self.registry,
        )


class RelayMetrics:
    def __init__(self) -> None:
        self.registry = _registry()
        self.outbox_depth = Gauge("icp_outbox_depth", "Outbox rows not yet published (read on scrape)",
                                  registry=self.registry)  # fmt: skip
        self.outbox_oldest_age = Gauge("icp_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row "
                                       "(0 when empty; read on scrape)", registry=self.registry)  # fmt: skip
        self.published = Counter(
            "icp_outbox_published",
            "Outbox rows published to Kafka (or with nothing left to publish)",
            registry=self.registry,
        )
        self.dead_letters = _dead_letters(self.registry)


class NotifierMetrics:
    def __init__(self) -> None:
        self.registry = _registry()
        self.webhook_attempts = Counter(
            "icp_webhook_attempts", "Webhook delivery attempts by outcome (delivered, failed: retried later, gave_up)",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.consumer_lag = _consumer_lag(self.registry)


# Built once per process at import: prometheus-client's own idiom (metrics are process-wide facts), and
# the places that count need no extra parameter to reach them.
API = ApiMetrics()
SCHEDULER = SchedulerMetrics()
CONNECTOR = ConnectorMetrics()
PROJECTOR = ProjectorMetrics()
RELAY = RelayMetrics()
NOTIFIER = NotifierMetrics()


async def consumer_lag(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int | None]:
    """Per assigned partition: messages not fetched yet; None until a fetch told us the highwater."""
    lags: dict[TopicPartition, int | None] = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        try:
            position = await consumer.position(tp)
        except Exception:  # revoked meanwhile, or the group is rebalancing: unknown for now
            lags[tp] = None
            continue
        lags[tp] = None if highwater is None else max(highwater - position, 0)
    return lags


async def record_consumer_lag(gauge: Gauge, consumers: Mapping[str, AIOKafkaConsumer]) -> None:
    """Replace the gauge's series with the lags of every group's current assignment (revoked partitions
    disappear). All groups at once: the gauge is cleared once, after every lag is known."""
    lags = {group: await consumer_lag(consumer) for group, consumer in consumers.items()}
    gauge.clear()
    for group, of_group in lags.items():
        for tp, lag in of_group.items():
            if lag is not None:
                gauge.labels(group, tp.topic, str(tp.partition)).set(lag)
