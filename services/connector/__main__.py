"""`python -m services.connector`: execute ingestion runs."""

from __future__ import annotations

from services.connector.bootstrap import run_connector
from services.connector.settings import ConnectorSettings
from shared.logging import configure_logging
from shared.process import run_service


def main() -> None:
    settings = ConnectorSettings()
    configure_logging(settings.log_level, settings.log_format, service="connector")
    run_service(lambda: run_connector(settings), settings.worker_niceness)


if __name__ == "__main__":
    main()
