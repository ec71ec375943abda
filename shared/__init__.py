"""The contract between services: event envelope and types, topic names, Kafka/Postgres helpers, settings, logging."""
