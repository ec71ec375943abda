"""The served OpenAPI document covers every route and every answer, and keeps the Entropy contract."""

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from services.api.app import DIALECT_OPENAPI, OPENAPI_PATH, create_app
from services.api.settings import ApiSettings

METHODS = {"get", "post", "put", "patch", "delete"}


def document() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI_PATH.read_text())


def documented() -> dict:
    return document()["paths"]


def operations() -> Iterator[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(path, method, operation, parameters including the path-level ones, $refs resolved)."""
    doc = document()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                parameters = [resolve(doc, p) for p in item.get("parameters", []) + operation.get("parameters", [])]
                yield path, method, operation, parameters


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_registered_route_is_documented():
    """Each route in the document of its dialect: Immuta's v2 and v1 have their own, the rest is in ours."""
    app = create_app(ApiSettings(APP_ENV="test"))
    documents = {name: yaml.safe_load(path.read_text())["paths"] for name, path in DIALECT_OPENAPI.items()}
    # Secoda's paths answer with and without their trailing slash; its document has each once.
    documents["secoda"] = {path.rstrip("/"): item for path, item in documents["secoda"].items()}
    missing = []
    for route in app.router.routes():
        path = route.resource.canonical
        if route.method == "HEAD" or path.startswith("/console"):  # the web console's HTML pages are no API
            continue
        if path.startswith("/api/connections"):
            paths = documents["immuta-v2"]
        elif path.startswith("/data/"):
            paths = documents["immuta-v1"]
        elif path.startswith(("/api/v1/", "/api/v2/")):
            paths, path = documents["secoda"], path.rstrip("/")
        else:
            paths = documented()
        if route.method.lower() not in paths.get(path, {}):
            missing.append(f"{route.method} {path}")
    assert missing == []


def test_the_entropy_operations_keep_their_ids():
    ids = {op["operationId"] for path in documented().values() for op in path.values() if isinstance(op, dict)
           and "operationId" in op}  # fmt: skip
    assert {"listIntegrations", "getIntegration", "listIntegrationRuns", "getLatestIntegrationRun",
            "getIntegrationRun", "triggerIntegrationRun", "cancelIntegrationRun"} <= ids  # fmt: skip


def test_every_answer_the_api_can_give_is_documented():
    """403 (key) and 503 (database) everywhere under /api; 400 wherever input is parsed; 413/422 with a body."""
    missing = []
    for path, method, operation, parameters in operations():
        expected = set()
        if path.startswith("/api/"):
            expected |= {"403", "503"}
        if parameters or "requestBody" in operation:
            expected.add("400")  # e.g. NUL characters in any text, integers out of range, malformed JSON
        if "requestBody" in operation:
            expected |= {"413", "422"}
        if any(p["in"] == "path" and p["name"] == "externalId" for p in parameters):
            expected.add("404")
        documented_codes = {str(code) for code in operation["responses"]}
        missing += [f"{method.upper()} {path} {code}" for code in sorted(expected - documented_codes)]
    assert missing == []


def test_errors_are_problem_json_and_successes_have_a_schema():
    doc = document()
    wrong = []
    for path, method, operation, _ in operations():
        for code, response in operation["responses"].items():
            content = resolve(doc, response).get("content", {})
            status = int(code)
            if status >= 400 and (path, method, status) != ("/api/integrations/{externalId}/run", "post", 409):
                if list(content) != ["application/problem+json"]:
                    wrong.append(f"{method.upper()} {path} {code}: {list(content)}")
            elif status != 204 and (not content or not all("schema" in media for media in content.values())):
                wrong.append(f"{method.upper()} {path} {code} has no schema")
    assert wrong == []


def test_the_document_uses_openapi_3_1_nulls_and_every_reference_resolves():
    """3.1 is JSON Schema: `nullable` is ignored there, so a null would not validate; `type: [x, 'null']` does."""
    doc = document()
    assert doc["openapi"].startswith("3.1")

    def walk(node: Any, where: str) -> Iterator[str]:
        if isinstance(node, dict):
            if "nullable" in node:
                yield f"nullable at {where}"
            if isinstance(node.get("$ref"), str):
                try:
                    resolve(doc, {"$ref": node["$ref"]})
                except KeyError:
                    yield f"unresolved {node['$ref']} at {where}"
            for key, value in node.items():
                yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}/{index}")

    assert list(walk(doc, "#")) == []


def test_outside_dev_the_api_refuses_to_start_without_a_credentials_key():
    from services.core.crypto import CredentialsKeyMissing

    with pytest.raises(CredentialsKeyMissing, match="CREDENTIALS_KEY"):
        create_app(ApiSettings(APP_ENV="production"))
