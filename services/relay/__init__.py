"""The outbox relay: publishes what committed transactions queued in the outbox to Kafka."""
