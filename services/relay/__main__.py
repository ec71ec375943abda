"""`python -m services.relay`: publish the transactional outbox to Kafka."""

from __future__ import annotations

from services.relay.bootstrap import run_relay_service
from services.relay.settings import RelaySettings
from shared.logging import configure_logging
from shared.process import run_service


def main() -> None:
    settings = RelaySettings()
    configure_logging(settings.log_level, settings.log_format, service="relay")
    run_service(lambda: run_relay_service(settings), settings.worker_niceness)


if __name__ == "__main__":
    main()
