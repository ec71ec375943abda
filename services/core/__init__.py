"""The domain: integrations, runs and their state machine, assets, access control. No HTTP, no Kafka."""
