"""The projector: applies connector reports to the run log and read models; relays the outbox to Kafka."""
