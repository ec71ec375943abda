"""The Immuta v1 and v2 OpenAPI documents: valid OpenAPI 3.1, every seed operation, strict schemas, one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
import yaml
from schemathesis.core.result import Err

OPENAPI_DIR = Path(__file__).resolve().parents[2] / "services" / "api" / "openapi"
DOCUMENTS = ["immuta-v1.yaml", "immuta-v2.yaml"]
METHODS = {"get", "put", "post", "patch", "delete"}
PROBLEM = "#/components/schemas/Problem"
# Seed 004 gives this pattern for task and run ids.
SEED_UUID = (
    "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    "|00000000-0000-0000-0000-000000000000)$"
)

V2_OPERATIONS = {
    "listConnections": ("get", "/api/connections"),
    "createConnection": ("post", "/api/connections"),
    "getConnection": ("get", "/api/connections/{connectionKey}"),
    "patchConnection": ("patch", "/api/connections/{connectionKey}"),
    "deleteConnection": ("delete", "/api/connections/{connectionKey}"),
    "activateConnection": ("post", "/api/connections/{connectionKey}/_activate"),
    "deactivateConnection": ("post", "/api/connections/{connectionKey}/_deactivate"),
    "validateConnection": ("post", "/api/connections/{connectionKey}/_validate"),
    "searchDataObjects": ("post", "/api/connections/dataObjects/_search"),
    "getDataObject": ("get", "/api/connections/{connectionKey}/dataObjects/{id}"),
    "patchDataObject": ("patch", "/api/connections/{connectionKey}/dataObjects/{id}"),
    "deleteDataObject": ("delete", "/api/connections/{connectionKey}/dataObjects/{id}"),
    "listDataObjectChildren": ("get", "/api/connections/{connectionKey}/dataObjects/{id}/children"),
    "listTasks": ("get", "/api/connections/{connectionKey}/tasks"),
    "createTask": ("post", "/api/connections/{connectionKey}/tasks"),
    "getTask": ("get", "/api/connections/{connectionKey}/tasks/{taskId}"),
    "listTaskRuns": ("get", "/api/connections/{connectionKey}/tasks/{taskId}/runs"),
    "getTaskRun": ("get", "/api/connections/{connectionKey}/tasks/{taskId}/runs/{runId}"),
    "cancelTaskRun": ("post", "/api/connections/{connectionKey}/tasks/{taskId}/runs/{runId}/_cancel"),
}
V1_OPERATIONS = {
    "getDataConnection": ("get", "/data/connection/{connectionKey}"),
    "putDataConnection": ("put", "/data/connection/{connectionKey}"),
    "getDataObjectByPath": ("get", "/data/object/{objectPath}"),
    "deleteDataObjectByPath": ("delete", "/data/object/{objectPath}"),
    "searchDataObjectsRoot": ("post", "/data/object/search"),
    "searchDataObjectsByPath": ("post", "/data/object/search/{objectPath}"),
    "crawlDataObject": ("post", "/data/crawl/{objectPath}"),
    "putDataObjectSettings": ("put", "/data/settings/{objectPath}"),
}


@cache
def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((OPENAPI_DIR / name).read_text())
    return document


def v1() -> dict[str, Any]:
    return load("immuta-v1.yaml")


def v2() -> dict[str, Any]:
    return load("immuta-v2.yaml")


def resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def parameters(doc: dict[str, Any], operation_id: str) -> dict[str, dict[str, Any]]:
    """The operation's parameters, path-level ones included, by name."""
    for path, _, operation in operations(doc):
        if operation["operationId"] == operation_id:
            found = doc["paths"][path].get("parameters", []) + operation.get("parameters", [])
            return {param["name"]: param for param in (resolve(doc, p) for p in found)}
    raise KeyError(operation_id)


def schemas(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, schema) of every schema the document holds: components, parameters, bodies, responses."""
    for name, schema in doc["components"]["schemas"].items():
        yield f"components/schemas/{name}", schema
    for name, param in doc["components"].get("parameters", {}).items():
        yield f"components/parameters/{name}", param["schema"]
    for path, method, operation in operations(doc):
        for param in operation.get("parameters", []):
            if "schema" in param:
                yield f"{method} {path} parameter {param['name']}", param["schema"]
        body = resolve(doc, operation.get("requestBody", {}))
        for media, content in body.get("content", {}).items():
            yield f"{method} {path} body {media}", content["schema"]
        for code, response in operation["responses"].items():
            for media, content in resolve(doc, response).get("content", {}).items():
                yield f"{method} {path} {code} {media}", content["schema"]


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def validator(doc: dict[str, Any], schema_name: str) -> jsonschema_rs.Draft202012Validator:
    """A validator of one component schema, its $refs resolved within the document, formats asserted."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_document_is_valid_openapi_3_1_that_schemathesis_can_load(name: str) -> None:
    doc = load(name)
    assert doc["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # against the OpenAPI 3.1 meta-schema that schemathesis ships
    results = list(schema.get_all_operations())
    unusable = [str(result.err()) for result in results if isinstance(result, Err)]
    assert unusable == []
    assert len(results) == len(list(operations(doc)))


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_schema_is_valid_json_schema_2020_12(name: str) -> None:
    invalid = []
    for where, schema in schemas(load(name)):
        try:
            jsonschema_rs.meta.validate(schema)
        except jsonschema_rs.ValidationError as error:
            invalid.append(f"{where}: {error.message}")
    assert invalid == []


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_reference_resolves(name: str) -> None:
    doc = load(name)
    unresolved = []
    for where, node in walk(doc):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            try:
                resolve(doc, node)
            except (KeyError, TypeError):
                unresolved.append(f"{node['$ref']} at {where}")
    assert unresolved == []


@pytest.mark.parametrize(("name", "expected"), [("immuta-v1.yaml", V1_OPERATIONS), ("immuta-v2.yaml", V2_OPERATIONS)])
def test_every_seed_operation_is_documented_at_its_full_path_under_its_id(
    name: str, expected: dict[str, tuple[str, str]]
) -> None:
    documented = {operation["operationId"]: (method, path) for path, method, operation in operations(load(name))}
    assert documented == expected


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_error_is_problem_json_with_the_error_schema(name: str) -> None:
    doc = load(name)
    wrong = []
    for path, method, operation in operations(doc):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            content = resolve(doc, response).get("content", {})
            schema = content.get("application/problem+json", {}).get("schema", {})
            if list(content) != ["application/problem+json"] or schema.get("$ref") != PROBLEM:
                wrong.append(f"{method.upper()} {path} {code}")
    assert wrong == []


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_error_schema_carries_problem_json_and_the_hapi_fields(name: str) -> None:
    problem = load(name)["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance", "message", "statusCode"}
    assert set(problem["properties"]) == set(problem["required"]) | {"errors"}
    check = validator(load(name), "Problem")
    base = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No connection 'x'.",
            "instance": "/data/connection/x", "message": "No connection 'x'.", "statusCode": 404}  # fmt: skip
    assert check.is_valid(base)
    assert check.is_valid({**base, "errors": [{"field": "connection.port", "message": "must be at most 65535"}]})
    without_message = {key: value for key, value in base.items() if key != "message"}
    assert not check.is_valid(without_message)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_operation_accepts_the_three_ways_of_sending_a_key_and_answers_401(name: str) -> None:
    doc = load(name)
    schemes = {name: {key: value for key, value in scheme.items() if key != "description"}
               for name, scheme in doc["components"]["securitySchemes"].items()}  # fmt: skip
    assert schemes == {
        "BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "API key"},
        "AuthorizationKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    assert doc["security"] == [{"BearerAuth": []}, {"AuthorizationKey": []}, {"ApiKeyAuth": []}]
    lacking = [f"{method.upper()} {path}" for path, method, operation in operations(doc)
               if "security" in operation or "401" not in operation["responses"]]  # fmt: skip
    assert lacking == []


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_object_schema_is_closed(name: str) -> None:
    """additionalProperties: false everywhere, so a fuzzer flags any field the server adds or misspells."""
    open_objects = [where for where, node in walk(load(name)["components"]["schemas"], "#/components/schemas")
                    if isinstance(node, dict) and node.get("type") == "object"
                    and node.get("additionalProperties") is not False]  # fmt: skip
    assert open_objects == []


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_example_matches_its_schema(name: str) -> None:
    doc = load(name)
    wrong = []
    for schema_name, schema in doc["components"]["schemas"].items():
        if "example" in schema:
            errors = [error.message for error in validator(doc, schema_name).iter_errors(schema["example"])]
            wrong += [f"{schema_name}: {message}" for message in errors]
    assert wrong == []


def test_v2_lists_page_with_the_seed_bracket_parameters() -> None:
    doc = v2()
    for operation_id in ["listConnections", "listDataObjectChildren", "listTasks", "listTaskRuns"]:
        params = parameters(doc, operation_id)
        limit, cursor = params["page[limit]"], params["page[cursor]"]
        assert (limit["in"], limit["style"], limit["explode"]) == ("query", "form", True)
        assert (cursor["in"], cursor["style"], cursor["explode"]) == ("query", "form", True)
        assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
        assert cursor["schema"] == {"type": "string"}
    assert {"filter[type]", "filter[status]", "filter[trigger]", "filter[createdBy]", "filter[parentId]"} < set(
        parameters(doc, "listTasks")
    )
    assert "filter[status]" in parameters(doc, "listTaskRuns")


def test_v2_enums_are_the_ones_the_specification_chose() -> None:
    found = v2()["components"]["schemas"]
    assert found["TaskType"]["enum"] == ["DATA_OBJECT_SYNC", "DATA_OBJECT_DELETE", "CONNECTION_DELETE",
                                         "SETTINGS_UPDATE"]  # fmt: skip
    assert found["TaskStatus"]["enum"] == ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    assert found["TaskTrigger"]["enum"] == ["MANUAL", "SCHEDULED", "SYSTEM"]
    assert found["ConnectionState"]["enum"] == ["ACTIVE", "INACTIVE", "UNHEALTHY"]
    assert found["NormalizedType"]["enum"] == ["CONNECTION", "DATABASE", "SCHEMA", "TABLE"]


def test_task_and_run_ids_use_the_seed_uuid_pattern() -> None:
    doc = v2()
    assert doc["components"]["schemas"]["Uuid"]["pattern"] == SEED_UUID
    uuid_ref = {"$ref": "#/components/schemas/Uuid"}
    params = parameters(doc, "cancelTaskRun")
    assert params["taskId"]["schema"] == uuid_ref
    assert params["runId"]["schema"] == uuid_ref
    assert parameters(doc, "listTasks")["filter[parentId]"]["schema"] == uuid_ref
    task, run = doc["components"]["schemas"]["Task"], doc["components"]["schemas"]["TaskRun"]
    assert task["properties"]["taskId"] == task["properties"]["parentId"] == run["properties"]["runId"] == uuid_ref
    assert v1()["components"]["schemas"]["Uuid"]["pattern"] == SEED_UUID  # bulkId is a taskId


@pytest.mark.parametrize("name", DOCUMENTS)
def test_connection_keys_follow_the_key_rules(name: str) -> None:
    check = validator(load(name), "ConnectionKey")
    for good in ["my-connection", "a", "A_b-9", "x" * 128, "datasource", "searches"]:
        assert check.is_valid(good), good
    for bad in ["", "x" * 129, "my.connection", "my connection", "a/b", "café", "data", "Search", "UPGRADE", "sync"]:
        assert not check.is_valid(bad), bad


def test_v2_connections_never_show_a_password() -> None:
    check = validator(v2(), "Connection")
    resource = v2()["components"]["schemas"]["Connection"]["example"]
    assert check.is_valid(resource)
    assert not check.is_valid({**resource, "connection": {**resource["connection"], "password": "secret"}})


def test_v2_task_runs_carry_the_timestamps_of_their_status() -> None:
    check = validator(v2(), "TaskRun")
    created = {"runId": "0b6f3c4e-8d2a-4f1b-9c7e-5a3d2e1f0a9b", "createdAt": "2024-01-01T00:00:00Z",
               "updatedAt": "2024-01-01T00:00:01Z"}  # fmt: skip
    started = {**created, "startedAt": "2024-01-01T00:00:01Z"}
    completed = {**started, "completedAt": "2024-01-01T00:00:05Z"}
    assert check.is_valid({**created, "status": "PENDING"})
    assert check.is_valid({**started, "status": "RUNNING"})
    assert check.is_valid({**completed, "status": "SUCCEEDED"})
    assert check.is_valid({**completed, "status": "CANCELLED", "canceledBy": "7"})
    assert check.is_valid({**created, "completedAt": "2024-01-01T00:00:05Z", "status": "CANCELLED"})
    assert not check.is_valid({**created, "status": "RUNNING"})
    assert not check.is_valid({**completed, "status": "RUNNING"})
    assert not check.is_valid({**started, "status": "FAILED"})
    assert not check.is_valid({**completed, "status": "SUCCEEDED", "canceledBy": "7"})
    assert not check.is_valid({**created, "status": "DONE"})


def test_v2_only_manual_tasks_name_a_key_as_creator() -> None:
    check = validator(v2(), "Task")
    task = {"taskId": "6a0c7d1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f", "type": "DATA_OBJECT_SYNC", "status": "PENDING",
            "createdAt": "2024-01-01T00:00:00Z"}  # fmt: skip
    assert check.is_valid({**task, "trigger": "MANUAL", "createdBy": "7"})
    assert check.is_valid({**task, "trigger": "SYSTEM", "createdBy": "system"})
    assert not check.is_valid({**task, "trigger": "SCHEDULED", "createdBy": "7"})
    created = validator(v2(), "CreatedTask")
    assert created.is_valid({**task, "trigger": "MANUAL", "createdBy": "7"})
    assert not created.is_valid({**task, "type": "SETTINGS_UPDATE", "trigger": "MANUAL", "createdBy": "7"})


def test_v1_seed_examples_with_their_garbling_fixed_validate() -> None:
    """Seed 003's GET object and settings examples, for PostgreSQL, with real timestamps and a settings object."""
    settings: dict[str, Any] = {
        "isActive": {"value": True, "hasDescendantsWithOverrides": True},
        "activateNewChildren": {"value": True, "hasDescendantsWithOverrides": True},
        "dataOwners": {"value": [{"id": 2, "type": "user"}], "hasDescendantsWithOverrides": True},
        "infrastructureAdmins": {"value": [{"id": 3, "type": "group"}], "hasDescendantsWithOverrides": True},
    }
    obj = {"objectPath": ["yourConnectionKey", "yourDatabase"], "technology": "PostgreSQL", "state": "active",
           "settings": settings, "overrides": ["isActive", "activateNewChildren", "infrastructureAdmins", "dataOwners"],
           "dataSourceId": None, "lastCrawled": "2023-08-21T10:39:00.250Z", "createdAt": "2023-08-21T10:39:00.250Z",
           "remoteId": "yourDatabase"}  # fmt: skip
    bulk_id = "6a0c7d1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f"
    assert validator(v1(), "DataObject").is_valid(obj)
    assert validator(v1(), "DataObjectWithBulkId").is_valid({**obj, "bulkId": bulk_id})
    assert validator(v1(), "SearchResult").is_valid({"count": 1, "hits": [obj]})
    assert not validator(v1(), "DataObject").is_valid({**obj, "bulkId": bulk_id})
    assert not validator(v1(), "DataObject").is_valid({**obj, "objectPath": "yourConnectionKey/yourDatabase"})
    assert not validator(v1(), "DataObject").is_valid({**obj, "settings": list(settings.values())})


def test_v1_connections_never_show_a_password() -> None:
    check = validator(v1(), "DataConnection")
    connection = v1()["components"]["schemas"]["DataConnection"]["example"]
    assert check.is_valid(connection)
    assert not check.is_valid({**connection, "connection": {**connection["connection"], "password": "[REDACTED]"}})


def test_v1_object_paths_are_documented_as_percent_encoded_segments() -> None:
    doc = v1()
    for path, _, operation in operations(doc):
        if "{objectPath}" in path:
            param = parameters(doc, operation["operationId"])["objectPath"]
            assert param["in"] == "path"
            assert "`/` inside a name is `%2F`" in param["description"], path
    search = parameters(doc, "searchDataObjectsByPath")
    assert set(search) == {"objectPath", "sortField", "sortOrder", "offset", "limit", "searchText"}
    assert set(parameters(doc, "searchDataObjectsRoot")) == set(search) - {"objectPath"}
    assert search["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert "forceRecursive" in parameters(doc, "crawlDataObject")
