"""Every service has its own default ops port (so `make run` starts them side by side on one machine), and
the banner of `make run` names the ports the services really use."""

from __future__ import annotations

import re

from services.api.settings import ApiSettings
from services.connector.settings import ConnectorSettings
from services.projector.settings import ProjectorSettings
from services.relay.settings import RelaySettings
from services.scheduler.settings import SchedulerSettings
from tests.e2e.conftest import ROOT, SERVICES

SETTINGS = {"api": ApiSettings, "scheduler": SchedulerSettings, "connector": ConnectorSettings,
            "projector": ProjectorSettings, "relay": RelaySettings}  # fmt: skip


def test_each_service_has_a_distinct_default_ops_port_and_the_run_banner_lists_them() -> None:
    defaults = {name: SETTINGS[name].model_fields["ops_port"].default for name in SERVICES}
    assert len(set(defaults.values())) == len(SERVICES)
    banner = (ROOT / "infra" / "run_services.sh").read_text()
    listed = {
        name: int(port) for port, name in re.findall(r"(\d{4,5}) (api|scheduler|connector|projector|relay)", banner)
    }
    assert listed == defaults
