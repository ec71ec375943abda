"""Projector settings from the environment."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings, ops_port


class ProjectorSettings(CommonSettings):
    ops_port: int = ops_port(9104)
    # /readyz fails while more connector reports than this wait unfetched on a partition (it is behind).
    ready_max_lag: int = Field(default=1000, alias="PROJECTOR_READY_MAX_LAG", ge=0)
