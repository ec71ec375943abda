"""The contract's platforms: every module here has a PLATFORMS list (tests.sources.contract.ContractPlatform)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def all_platforms() -> list[Any]:
    platforms: list[Any] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        platforms.extend(importlib.import_module(f"{__name__}.{module.name}").PLATFORMS)
    return platforms
