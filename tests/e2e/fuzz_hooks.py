"""Schemathesis hooks for the fuzz run of test_fuzz.py, loaded by `st` through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

import os
import uuid
from typing import Any

import schemathesis

PROTECTED_KEY_ID = os.environ.get("FUZZ_OWNER_KEY_ID", "")


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    # The fuzzer authenticates with this key and learns its id from GET /api/api-keys: revoking it would
    # turn the rest of the run into 403s. Any other key it may revoke; this one becomes an unknown id (404).
    if case.path_parameters and case.path_parameters.get("keyId") == PROTECTED_KEY_ID:
        case.path_parameters["keyId"] = str(uuid.uuid4())
