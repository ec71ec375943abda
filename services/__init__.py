"""The services of the ingestion control plane and the one domain they share (services.core)."""
