"""`python -m services.scheduler`: fire schedules, reap silent runs."""

from __future__ import annotations

from services.scheduler.bootstrap import run_scheduler
from services.scheduler.settings import SchedulerSettings
from shared.logging import configure_logging
from shared.process import run_service


def main() -> None:
    settings = SchedulerSettings()
    configure_logging(settings.log_level, settings.log_format, service="scheduler")
    run_service(lambda: run_scheduler(settings), settings.worker_niceness)


if __name__ == "__main__":
    main()
