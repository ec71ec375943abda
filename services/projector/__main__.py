"""`python -m services.projector`: project connector reports into the run log and read models."""

from __future__ import annotations

from services.projector.bootstrap import run_projector
from services.projector.settings import ProjectorSettings
from shared.logging import configure_logging
from shared.process import run_service


def main() -> None:
    settings = ProjectorSettings()
    configure_logging(settings.log_level, settings.log_format, service="projector")
    run_service(lambda: run_projector(settings), settings.worker_niceness)


if __name__ == "__main__":
    main()
