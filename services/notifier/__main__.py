"""`python -m services.notifier`: deliver webhook notifications of how runs ended."""

from __future__ import annotations

from services.notifier.bootstrap import run_notifier
from services.notifier.settings import NotifierSettings
from shared.logging import configure_logging
from shared.process import run_service


def main() -> None:
    settings = NotifierSettings()
    configure_logging(settings.log_level, settings.log_format, service="notifier")
    run_service(lambda: run_notifier(settings), settings.worker_niceness)


if __name__ == "__main__":
    main()
