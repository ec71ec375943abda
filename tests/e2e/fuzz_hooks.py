"""Schemathesis hooks for the fuzz runs of test_fuzz.py, loaded by `st` through SCHEMATHESIS_HOOKS.

FUZZ_SEEDS (JSON, set by the test for each document) says what exists on the server, by parameter name:
- `seeds`: groups of values that belong together (one connection's key, object ids and paths, task and run);
  generated path parameters (and the `connectionKey` of a body) may be replaced by one group's values, so that
  requests meet existing resources instead of only 404s;
- `disposable`: the groups a DELETE gets instead (the seeds themselves must survive the run);
- `protected`: values a DELETE (or a key revocation) must never reach; such a request goes to an unknown
  resource instead (a 404), wherever the value came from (a seed, a link of the stateful phase).
Object paths are given percent-encoded, as they go into the URL.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.parameters import EncodedPath

FUZZ_SEEDS: dict[str, Any] = json.loads(os.environ.get("FUZZ_SEEDS") or "{}")
SEEDS: list[dict[str, list[str]]] = FUZZ_SEEDS.get("seeds", [])
DISPOSABLE: list[dict[str, list[str]]] = FUZZ_SEEDS.get("disposable", [])
PROTECTED: dict[str, list[str]] = FUZZ_SEEDS.get("protected", {})
# Unknown but well-formed stand-ins for a protected value: the request still passes validation and gets a 404.
UNKNOWN_ID = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f"
UNKNOWN = {"objectPath": "fuzz-unknown/shop", "connectionKey": "fuzz-unknown"}


def _seeded(group: dict[str, list[str]], generated: dict[str, Any]) -> Any:
    """The generated parameters with each one the group knows replaced by one of its values."""
    draws = {
        name: st.sampled_from([EncodedPath(v) if name == "objectPath" else v for v in group[name]])
        if group.get(name) else st.just(value)
        for name, value in generated.items()
    }  # fmt: skip
    return st.fixed_dictionaries(draws)


@schemathesis.hook
def flatmap_path_parameters(context: schemathesis.HookContext, path_parameters: dict[str, Any]) -> Any:
    # About half the cases as generated (mostly unknown resources: 404s, 400s), half with the parameters replaced
    # by the values of one seeded connection, so that its key, object ids, task and run belong together.
    if not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    delete = context.operation is not None and context.operation.method.upper() == "DELETE"
    groups = [group for group in (DISPOSABLE if delete and DISPOSABLE else SEEDS) if set(group) & set(path_parameters)]
    if not groups:
        return st.just(path_parameters)
    seeded = st.sampled_from(groups).flatmap(lambda group: _seeded(group, path_parameters))
    return st.one_of(seeded, st.just(path_parameters))


@schemathesis.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
    keys = [key for group in SEEDS for key in group.get("connectionKey", [])]
    if not isinstance(body, dict) or "connectionKey" not in body or not keys:
        return st.just(body)
    # POST /api/connections names a new connection: an existing key is only a 409, the coverage phase has those.
    if context.operation is not None and context.operation.path == "/api/connections":
        return st.just(body)
    return st.one_of(st.sampled_from([{**body, "connectionKey": key} for key in keys]), st.just(body))


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case[Any], kwargs: dict[str, Any]) -> None:
    # Ours: the fuzzer authenticates with the bootstrap key and learns its id from GET /api/api-keys; revoking it
    # would turn the rest of the run into 403s. Any other key it may revoke; this one becomes an unknown id (404).
    # Immuta's: deleting the seeded connection or a seeded object would leave the rest of the run only 404s.
    if not case.path_parameters:
        return
    for name, value in case.path_parameters.items():
        deleted = case.method.upper() == "DELETE" and case.path.endswith("{" + name + "}")  # what a DELETE removes
        if value in PROTECTED.get(name, ()) and (name == "keyId" or deleted):
            case.path_parameters[name] = UNKNOWN.get(name, UNKNOWN_ID)
