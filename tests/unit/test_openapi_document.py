"""The served OpenAPI document covers every route the API registers, and keeps the Entropy contract."""

import yaml

from services.api.app import OPENAPI_PATH, create_app
from services.api.settings import ApiSettings


def documented() -> dict:
    return yaml.safe_load(OPENAPI_PATH.read_text())["paths"]


def test_every_registered_route_is_documented():
    app = create_app(ApiSettings(APP_ENV="test"))
    paths = documented()
    missing = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        if route.method.lower() not in paths.get(path, {}):
            missing.append(f"{route.method} {path}")
    assert missing == []


def test_the_entropy_operations_keep_their_ids():
    ids = {op["operationId"] for path in documented().values() for op in path.values() if isinstance(op, dict)
           and "operationId" in op}  # fmt: skip
    assert {"listIntegrations", "getIntegration", "listIntegrationRuns", "getLatestIntegrationRun",
            "getIntegrationRun", "triggerIntegrationRun", "cancelIntegrationRun"} <= ids  # fmt: skip


def test_outside_dev_the_api_refuses_to_start_without_a_credentials_key():
    import pytest

    from services.core.crypto import CredentialsKeyMissing

    with pytest.raises(CredentialsKeyMissing, match="CREDENTIALS_KEY"):
        create_app(ApiSettings(APP_ENV="production"))
