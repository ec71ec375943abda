"""Kafka topic names: the only place they are spelled out."""

# Commands to the connector group, keyed by integration id so one integration's messages stay in order.
RUN_REQUESTS = "ingest.run-requests.v1"
# Cancellation commands; every connector instance reads all of them (each run lives on one instance).
RUN_CANCELLATIONS = "ingest.run-cancellations.v1"
# What connectors observe while executing runs (started, progress, assets, outcome, heartbeats).
CONNECTOR_REPORTS = "ingest.connector-reports.v1"
# The public, accepted run log: every event applied to a run, with its per-run sequence number.
RUN_EVENTS = "ingest.run-events.v1"
# "Can you reach this source?" requests to the connector group (any instance answers, via PostgreSQL).
CONNECTION_TESTS = "ingest.connection-tests.v1"

ALL_TOPICS: tuple[str, ...] = (RUN_REQUESTS, RUN_CANCELLATIONS, CONNECTOR_REPORTS, RUN_EVENTS, CONNECTION_TESTS)

# Topic settings beyond the common layout. A connection test carries (encrypted) credentials and is useless
# after its timeout: kept an hour, not the broker's week.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {CONNECTION_TESTS: {"retention.ms": str(60 * 60 * 1000)}}

# Defaults of the topic layout `python -m services.manage migrate` creates (KAFKA_TOPIC_PARTITIONS,
# KAFKA_REPLICATION_FACTOR, KAFKA_MIN_INSYNC_REPLICAS): right for one local broker; a production
# cluster wants a replication factor of 3 and min.insync.replicas 2.
PARTITIONS = 6
REPLICATION_FACTOR = 1
MIN_INSYNC_REPLICAS = 1
