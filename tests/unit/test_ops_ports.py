"""Every service has its own default ops port (so `make run` starts them side by side on one machine), and
the banner of `make run` names the ports the services really use."""

from __future__ import annotations

import re

from services.api.settings import ApiSettings
from services.connector.settings import ConnectorSettings
from services.notifier.settings import NotifierSettings
from services.projector.settings import ProjectorSettings
from services.relay.settings import RelaySettings
from services.scheduler.settings import SchedulerSettings
from tests.e2e.conftest import ROOT, SERVICES

SETTINGS = {"api": ApiSettings, "scheduler": SchedulerSettings, "connector": ConnectorSettings,
            "projector": ProjectorSettings, "relay": RelaySettings, "notifier": NotifierSettings}  # fmt: skip


def test_each_service_has_a_distinct_default_ops_port_and_the_run_banner_lists_them() -> None:
    defaults = {name: settings.model_fields["ops_port"].default for name, settings in SETTINGS.items()}
    assert len(set(defaults.values())) == len(SETTINGS) and set(SERVICES) < set(SETTINGS)
    banner = (ROOT / "infra" / "run_services.sh").read_text()
    listed = {name: int(port) for port, name in re.findall(rf"(\d{{4,5}}) ({'|'.join(SETTINGS)})", banner)}
    assert listed == defaults
