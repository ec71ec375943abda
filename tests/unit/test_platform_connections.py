"""Every crawled platform in the Immuta and Secoda dialects, generically from its source spec (issue 10).

The platforms are registered here only, in SPECS (the lead registers them for real): Glue's spec from disk, and two
test-only specs in the shapes of Trino (a host, an optional password) and of the file platforms (no secret).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.api.immuta import (
    LAYOUTS,
    REDACTED,
    NewConnection,
    connection_fields,
    connection_source_values,
    connection_sources,
    immuta_field_names,
    patch_model,
    platform_layout,
    replace_model,
    source_of_technology,
    technology_of,
)
from services.api.problems import IMMUTA, SECODA, STYLE, BadRequest, ErrorStyle, error_response
from services.api.secoda import NewSecodaIntegration, source_of_type, split_credentials, type_of
from services.core import sources
from services.core.errors import CredentialsRequired, InvalidInput
from services.core.model import Integration, Source
from services.core.sources import Endpoint, SourceSpec
from services.core.sources.glue import GLUE


class TrinoLikeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(min_length=1)
    port: int = Field(default=8080, ge=1, le=65535)
    https: bool = False
    username: str = Field(min_length=1)
    catalog: str | None = None


class TrinoLikeCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str | None = Field(default=None, min_length=1)


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)


class NoCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")


TRINO_LIKE = SourceSpec(
    source=Source.TRINO, config_model=TrinoLikeConfig, credentials_model=TrinoLikeCredentials,
    identity_fields=("host", "port", "https", "username"), endpoints=lambda c: [Endpoint(c.host, c.port)],
    plugin="tests.unit.never_imported:Plugin",
)  # fmt: skip
FILE_LIKE = SourceSpec(
    source=Source.SQLITE, config_model=FileConfig, credentials_model=NoCredentials, identity_fields=("path",),
    endpoints=lambda _: [], plugin="tests.unit.never_imported:Plugin",
)  # fmt: skip


REGISTERED = dict(sources.SPECS)  # the real registry, before the tests register theirs


def specs_on_disk() -> list[SourceSpec[Any, Any]]:
    """Every spec in services/core/sources, registered or not yet."""
    found = []
    for module in pkgutil.iter_modules(sources.__path__):
        imported = importlib.import_module(f"{sources.__name__}.{module.name}")
        found += [value for value in vars(imported).values() if isinstance(value, SourceSpec)]
    return found


@pytest.fixture(autouse=True)
def platforms(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in (GLUE, TRINO_LIKE, FILE_LIKE):
        monkeypatch.setitem(sources.SPECS, spec.source, spec)


def crawled() -> set[Source]:
    return {source for source, spec in sources.SPECS.items() if spec.crawled}


GLUE_WIRE = {"technology": "Glue", "region": "eu-west-1", "endpointUrl": None, "catalogId": "123456789012",
             "accessKeyId": "AKIAEXAMPLEKEY123456", "secretAccessKey": "s3cret/key"}  # fmt: skip
TRINO_WIRE = {"technology": "Trino", "hostname": "trino.example.com", "port": 8443, "https": True,
              "username": "reader", "catalog": "hive", "password": "pw"}  # fmt: skip
CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def integration(source: Source, configuration: dict[str, Any]) -> Integration:
    return Integration(
        id=uuid.uuid4(), external_id="k", name="k", source=source, enabled=True, owning_team_id=None,
        owning_team_external_id=None, configuration=configuration, schedule=None, has_credentials=True,
        created_at=CREATED, updated_at=CREATED,
    )  # fmt: skip


def stored(spec: SourceSpec[Any, Any], configuration: dict[str, Any]) -> dict[str, Any]:
    """A configuration as the core stores it (every field, by alias)."""
    dumped: dict[str, Any] = spec.parse_config(configuration).model_dump(by_alias=True)
    return dumped


def new(connection: dict[str, Any], key: str = "k") -> NewConnection:
    return NewConnection.model_validate({"connectionKey": key, "connection": connection})


def refused_fields(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as error:
        model.model_validate(body)
    return [e["loc"] for e in error.value.errors()]


# ---- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "technology"), [
    (Source.POSTGRES, "PostgreSQL"), (Source.MYSQL, "MySQL"), (Source.MARIADB, "MariaDB"), (Source.SNOWFLAKE,
    "Snowflake"), (Source.TRINO, "Trino"), (Source.BIGQUERY, "BigQuery"), (Source.GLUE, "Glue"), (Source.KAFKA,
    "kafka"), (Source.SQLITE, "sqlite"), (Source.DUCKDB, "duckdb"),
])  # fmt: skip
def test_each_platform_has_immutas_name_or_else_ours(source: Source, technology: str) -> None:
    assert technology_of(source) == technology


@pytest.mark.parametrize("source", [Source.MYSQL, Source.SNOWFLAKE, Source.GLUE, Source.KAFKA, Source.SQLITE])
def test_secoda_shows_every_platform_under_our_name(source: Source) -> None:
    assert type_of(source) == source.value


def test_every_registered_crawled_platform_is_a_connection_and_uploads_are_not() -> None:
    assert set(connection_sources()) == crawled() >= {Source.GLUE, Source.POSTGRES, Source.SQLITE, Source.TRINO}
    assert connection_source_values() == tuple(sorted(source.value for source in crawled()))
    assert not {Source.CUSTOM, Source.DBT_CORE} & set(connection_sources())
    assert source_of_technology("Glue") is Source.GLUE and source_of_technology("sqlite") is Source.SQLITE
    for unknown in ("glue", "Custom", "custom", "dbt_core", "Databricks", "databricks", None, 5):
        assert source_of_technology(unknown) is None


def test_a_platform_joins_the_connections_when_its_spec_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sources.SPECS, Source.TRINO)
    assert Source.TRINO not in connection_sources()
    with pytest.raises(ValidationError):
        new(TRINO_WIRE)
    monkeypatch.setitem(sources.SPECS, Source.TRINO, TRINO_LIKE)
    assert new(TRINO_WIRE).connection.source is Source.TRINO


# ---- Immuta: creating ---------------------------------------------------------------------------------


def test_a_new_glue_connection_splits_its_fields_into_configuration_and_credentials() -> None:
    made = new(GLUE_WIRE | {"authenticationType": "secretAccessKey"}).integration()
    assert made.source is Source.GLUE and made.external_id == "k"
    assert made.configuration == {"region": "eu-west-1", "endpointUrl": None, "catalogId": "123456789012",
                                  "accessKeyId": "AKIAEXAMPLEKEY123456"}  # fmt: skip
    assert made.credentials == {"secretAccessKey": "s3cret/key"}


def test_immutas_hostname_is_our_host_on_every_platform_that_has_one() -> None:
    made = new(TRINO_WIRE).integration()
    assert made.configuration == {"host": "trino.example.com", "port": 8443, "https": True, "username": "reader",
                                  "catalog": "hive"}  # fmt: skip
    assert made.credentials == {"password": "pw"}
    assert refused_fields(NewConnection, {"connectionKey": "k", "connection": TRINO_WIRE | {"host": "h"}}) == [
        ("connection", "host")]  # fmt: skip


def test_an_optional_secret_may_be_left_out_and_a_platform_without_secrets_needs_none() -> None:
    trino = new({k: v for k, v in TRINO_WIRE.items() if k != "password"}).integration()
    assert trino.credentials == {}  # checked by the spec: the core stores "no password"
    files = new({"technology": "sqlite", "path": "shop.db", "authenticationType": "none"}).integration()
    assert (files.source, files.configuration, files.credentials) == (Source.SQLITE, {"path": "shop.db"}, {})


@pytest.mark.parametrize("missing", ["region", "accessKeyId", "secretAccessKey", "technology"])
def test_a_new_connection_without_what_its_spec_requires_is_refused_naming_it(missing: str) -> None:
    body = {k: v for k, v in GLUE_WIRE.items() if k != missing}
    assert refused_fields(NewConnection, {"connectionKey": "k", "connection": body}) == [("connection", missing)]


@pytest.mark.parametrize("optional", ["endpointUrl", "catalogId"])
def test_what_the_spec_leaves_optional_may_be_left_out(optional: str) -> None:
    made = new({k: v for k, v in GLUE_WIRE.items() if k != optional}).integration()
    assert optional not in made.configuration


@pytest.mark.parametrize(("change", "field"), [
    ({"hostname": "h"}, "hostname"), ({"database": "d"}, "database"), ({"password": "p"}, "password"),
    ({"sslmode": "require"}, "sslmode"), ({"authenticationType": "userPassword"}, "authenticationType"),
    ({"region_name": "x"}, "region_name"), ({"config_0": "eu-west-1"}, "config_0"),
])  # fmt: skip
def test_a_field_of_another_layout_is_refused_naming_it(change: dict[str, Any], field: str) -> None:
    assert refused_fields(NewConnection, {"connectionKey": "k", "connection": GLUE_WIRE | change}) == [
        ("connection", field)]  # fmt: skip


def test_an_unknown_technology_lists_the_ones_there_are() -> None:
    with pytest.raises(ValidationError) as error:
        new(GLUE_WIRE | {"technology": "AWS Glue"})
    (problem,) = error.value.errors()
    assert problem["loc"] == ("connection", "technology")
    assert problem["msg"] == "Input should be one of: " + ", ".join(technology_of(s) for s in connection_sources())
    assert {"Glue", "PostgreSQL", "sqlite", "Trino"} <= set(problem["msg"].split(": ")[1].split(", "))


def test_the_redacted_placeholder_is_no_secret_to_register_with() -> None:
    with pytest.raises(BadRequest) as error:
        new(GLUE_WIRE | {"secretAccessKey": REDACTED}).integration()
    assert error.value.errors[0][0] == "connection.secretAccessKey"


# ---- Immuta: editing ----------------------------------------------------------------------------------


def test_a_patch_changes_only_what_it_sends_and_redacted_keeps_the_secret() -> None:
    model = patch_model(Source.GLUE)
    assert model.model_validate({}).connection.changes().model_fields_set == set()
    patch = model.model_validate({"connection": {"catalogId": None, "secretAccessKey": REDACTED}}).connection
    assert patch.configuration() == {"catalogId": None}  # null: back to the spec's default
    assert patch.credentials() is None
    patch = model.model_validate({"connection": {"technology": "Glue", "secretAccessKey": "new"}}).connection
    assert (patch.configuration(), patch.credentials()) == ({}, {"secretAccessKey": "new"})


def test_a_patch_can_clear_an_optional_secret_with_null() -> None:
    patch = patch_model(Source.TRINO).model_validate({"connection": {"hostname": "h2", "password": None}})
    assert patch.connection.configuration() == {"host": "h2"}
    assert patch.connection.credentials() == {"password": None}


@pytest.mark.parametrize("body", [
    {"connection": {"technology": "PostgreSQL"}}, {"connection": {"technology": "glue"}},
    {"connection": {"hostname": "h"}}, {"connection": {"authenticationType": "userPassword"}},
    {"connection": {"region": "eu-west-1"}, "dryRun": True}, {"connection": "eu-west-1"},
])  # fmt: skip
def test_a_patch_outside_the_connections_layout_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        patch_model(Source.GLUE).model_validate(body)


def test_postgresql_keeps_its_own_strict_layout() -> None:
    with pytest.raises(ValidationError):
        patch_model(Source.POSTGRES).model_validate({"connection": {"port": "5432"}})
    with pytest.raises(ValidationError):
        patch_model(Source.POSTGRES).model_validate({"connection": {"region": "eu-west-1"}})


def test_a_full_replace_needs_what_the_spec_requires_and_keeps_the_optional_fields_it_leaves_out() -> None:
    model = replace_model(Source.GLUE)
    assert [loc for loc in refused_fields(model, {"connection": {"technology": "Glue"}})] == [
        ("connection", "region"), ("connection", "accessKeyId"), ("connection", "secretAccessKey")]  # fmt: skip
    sent = model.model_validate({"connection": {"technology": "Glue", "region": "us-east-1",
                                                "accessKeyId": "AKIAEXAMPLEKEY123456",
                                                "secretAccessKey": REDACTED}}).connection  # fmt: skip
    current = stored(GLUE, {"region": "eu-west-1", "catalogId": "123456789012", "accessKeyId": "AKIAEXAMPLEKEY123456"})
    # Left out: catalogId keeps its value (as sslMode would: a client must not move or downgrade it unknowingly).
    assert sent.replaced_configuration(current) == current | {"region": "us-east-1"}
    assert sent.credentials() is None  # "[REDACTED]": the stored secret, if the target did not change
    refused = refused_fields(model, {"connection": GLUE_WIRE | {"technology": "PostgreSQL"}})
    assert refused == [("connection", "technology")]  # a connection keeps its platform


def test_a_patch_of_an_identity_field_without_the_secret_is_the_credentials_rule() -> None:
    """The rule the core applies to every platform (spec.changed_identity), fed by what the dialect sends."""
    before = stored(GLUE, {"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456"})
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"region": "us-east-1"}, ["configuration.region"]),
        ({"endpointUrl": "http://127.0.0.1:5000"}, ["configuration.endpointUrl"]),
        ({"accessKeyId": "AKIAOTHERKEY12345678"}, ["configuration.accessKeyId"]),
        ({"catalogId": None}, []),
    ]
    for change, changed in cases:
        patch = patch_model(Source.GLUE).model_validate({"connection": change | {"secretAccessKey": REDACTED}})
        changes = patch.connection.changes()
        assert changes.credentials is None
        after = GLUE.parse_config(before | (changes.configuration or {}))
        assert GLUE.changed_identity(before, after) == changed


# ---- Immuta: the object on the wire -------------------------------------------------------------------


def test_a_glue_connection_shows_its_fields_and_redacts_its_secret() -> None:
    glue = integration(Source.GLUE, stored(GLUE, {"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456"}))
    shown = connection_fields(glue, with_password=True)
    assert shown == {"technology": "Glue", "region": "eu-west-1", "endpointUrl": None, "catalogId": None,
                     "accessKeyId": "AKIAEXAMPLEKEY123456", "authenticationType": "secretAccessKey",
                     "secretAccessKey": REDACTED}  # fmt: skip
    assert "secretAccessKey" not in connection_fields(glue, with_password=False)  # v1 leaves secrets out


def test_what_a_get_shows_is_a_patch_that_changes_nothing() -> None:
    trino = integration(Source.TRINO, stored(TRINO_LIKE, {"host": "t", "username": "u"}))
    shown = connection_fields(trino, with_password=True)
    assert shown == {"technology": "Trino", "hostname": "t", "port": 8080, "https": False, "username": "u",
                     "catalog": None, "authenticationType": "userPassword", "password": REDACTED}  # fmt: skip
    patch = patch_model(Source.TRINO).model_validate({"connection": shown}).connection
    assert TRINO_LIKE.parse_config(patch.configuration()).model_dump(by_alias=True) == trino.configuration
    assert patch.credentials() is None
    replaced = replace_model(Source.TRINO).model_validate({"connection": shown}).connection
    assert replaced.replaced_configuration(trino.configuration) == trino.configuration


def test_a_platform_without_secrets_authenticates_with_none() -> None:
    files = integration(Source.SQLITE, {"path": "shop.db"})
    assert connection_fields(files, with_password=True) == {"technology": "sqlite", "path": "shop.db",
                                                            "authenticationType": "none"}  # fmt: skip


def test_postgresql_keeps_todays_object() -> None:
    configuration = {"host": "db", "port": 5432, "database": "shop", "username": "u", "sslmode": "require",
                     "includeSchemas": [], "excludeSchemas": ["tmp"]}  # fmt: skip
    pg = integration(Source.POSTGRES, configuration)
    assert connection_fields(pg, with_password=True) == {
        "technology": "PostgreSQL", "hostname": "db", "port": 5432, "database": "shop",
        "authenticationType": "userPassword", "username": "u", "password": REDACTED, "sslmode": "require",
        "excludeSchemas": ["tmp"]}  # fmt: skip


# ---- errors in each dialect's field names --------------------------------------------------------------


def rendered(error: Exception, style: ErrorStyle) -> tuple[int, dict[str, Any]]:
    app = web.Application()
    app[STYLE] = style
    response = error_response(error, make_mocked_request("PATCH", "/api/connections/k", app=app))
    assert isinstance(response.body, bytes)
    return response.status, json.loads(response.body)


def immuta_error(source: Source, error: InvalidInput) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidInput) as renamed, immuta_field_names(source):
        raise error
    return rendered(renamed.value, IMMUTA)


def test_the_credentials_rule_names_the_platforms_secret_and_fields_in_immutas_names() -> None:
    detail = ("Changing configuration.region, configuration.endpointUrl changes where or as whom the stored "
              "credentials are sent; send `credentials` (secretAccessKey) in the same request.")  # fmt: skip
    status, body = immuta_error(Source.GLUE, CredentialsRequired(detail, field="credentials"))
    assert status == 422 and body["errors"][0]["field"] == "connection.secretAccessKey"
    assert body["detail"] == ("Changing connection.region, connection.endpointUrl changes where or as whom the "
                              "stored credentials are sent; send `connection.secretAccessKey` (secretAccessKey) in "
                              "the same request.")  # fmt: skip


def test_a_bad_secret_or_field_is_a_400_in_immutas_names() -> None:
    status, body = immuta_error(Source.GLUE, InvalidInput("credentials.secretAccessKey: too short",
                                                          field="credentials.secretAccessKey"))  # fmt: skip
    assert (status, body["errors"][0]["field"]) == (400, "connection.secretAccessKey")
    assert body["detail"] == "connection.secretAccessKey: too short"
    status, body = immuta_error(Source.TRINO, InvalidInput("configuration.host: bad", field="configuration.host"))
    assert (status, body["errors"][0]["field"], body["detail"]) == (
        400,
        "connection.hostname",
        "connection.hostname: bad",
    )


def test_postgresql_errors_read_as_before() -> None:
    detail = "Changing configuration.host changes where the stored credentials are sent; send `credentials` again."
    renamed = immuta_error(Source.POSTGRES, CredentialsRequired(detail, field="credentials"))
    assert renamed == rendered(CredentialsRequired(detail, field="credentials"), IMMUTA)
    assert renamed[1]["detail"] == ("Changing connection.hostname changes where the stored credentials are sent; "
                                    "send `connection.password` again.")  # fmt: skip


def test_a_platform_without_secrets_keeps_the_error_as_it_is() -> None:
    error = InvalidInput("configuration.path: outside the root", field="configuration.path")
    assert immuta_error(Source.SQLITE, error)[1]["errors"][0]["field"] == "connection.path"


# ---- Secoda ---------------------------------------------------------------------------------------------


def test_secoda_accepts_every_platform_with_a_spec_and_nothing_else() -> None:
    for kind in ("postgres", "glue", "trino", "sqlite", "custom", "dbt_core"):
        assert NewSecodaIntegration.model_validate({"type": kind}).source is source_of_type(kind) is Source(kind)
    for kind in ("databricks", "Glue", "", "PostgreSQL"):
        with pytest.raises(ValidationError) as error:
            NewSecodaIntegration.model_validate({"type": kind})
        assert error.value.errors()[0]["loc"] == ("type",)
        assert ", ".join(sorted(source.value for source in sources.SPECS)) in error.value.errors()[0]["msg"]


def test_secodas_postgres_credentials_split_as_before() -> None:
    sent = {"host": "db", "port": 5432, "database": "shop", "user": "reader", "password": "pw"}
    assert split_credentials(sources.SPECS[Source.POSTGRES], sent) == (
        {"host": "db", "port": 5432, "database": "shop", "username": "reader"}, {"password": "pw"})  # fmt: skip


def test_secodas_credentials_carry_a_platforms_configuration_and_secrets() -> None:
    sent: dict[str, Any] = {"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456", "secretAccessKey": "k"}
    assert split_credentials(GLUE, sent) == ({"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456"},
                                             {"secretAccessKey": "k"})  # fmt: skip
    sent = {"host": "t", "username": "u", "https": True}  # `username` as well as Secoda's `user`; no password
    assert split_credentials(TRINO_LIKE, sent) == (sent, {})
    assert split_credentials(FILE_LIKE, {"path": "a.db"}) == ({"path": "a.db"}, {})


@pytest.mark.parametrize(("spec", "sent", "field"), [
    (GLUE, {"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456", "secretAccessKey": "k", "user": "u"},
     "credentials.user"),  # Glue has no username
    (TRINO_LIKE, {"host": "t", "user": "u", "username": "u"}, "credentials.user"),
    (TRINO_LIKE, {"host": "t", "user": "u", "pasword": "typo"}, "credentials.pasword"),
    (TRINO_LIKE, {"host": "t", "user": "u", "port": "eighty"}, "credentials.port"),
    (TRINO_LIKE, {"user": "u"}, "credentials.host"),
    (GLUE, {"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456"}, "credentials.secretAccessKey"),
    (GLUE, {"region": "mars", "accessKeyId": "AKIAEXAMPLEKEY123456", "secretAccessKey": "k"}, "credentials.region"),
    (FILE_LIKE, {"path": "a.db", "password": "x"}, "credentials.password"),
])  # fmt: skip
def test_bad_secoda_credentials_are_a_400_naming_the_field_never_the_value(
    spec: SourceSpec[Any, Any], sent: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as error:
        split_credentials(spec, sent)
    status, body = rendered(error.value, SECODA)
    assert status == 400 and body["errors"][0]["field"] == field, body
    assert "typo" not in str(body) and "eighty" not in str(body)


def test_secoda_types_follow_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sources.SPECS, Source.GLUE)
    assert source_of_type("glue") is None
    with pytest.raises(ValidationError):
        NewSecodaIntegration.model_validate({"type": "glue"})


# ---- the Immuta documents -----------------------------------------------------------------------------

OPENAPI = Path(__file__).resolve().parents[2] / "services" / "api" / "openapi"


@pytest.mark.parametrize(("document", "with_secrets"), [("immuta-v2.yaml", True), ("immuta-v1.yaml", False)])
def test_the_documents_name_every_field_of_every_registered_platforms_connection(
    document: str, with_secrets: bool
) -> None:
    """A spec registered with a field the documents lack fails here (and the fuzzer's response check later)."""
    schemas = yaml.safe_load((OPENAPI / document).read_text())["components"]["schemas"]
    specs = [spec for spec in [*REGISTERED.values(), *specs_on_disk(), TRINO_LIKE, FILE_LIKE] if spec.crawled]
    assert set(schemas["Technology"]["enum"]) >= {technology_of(spec.source) for spec in specs}
    for spec in specs:
        source = spec.source
        patch, full = LAYOUTS.get(source) or platform_layout(spec)
        layout = "Postgres" if source is Source.POSTGRES else "Platform"
        shown = set(patch.shown({}, with_secrets=with_secrets))
        assert shown <= set(schemas[f"{layout}ConnectionDetails"]["properties"]), (source, shown)
        written = {field.alias or name for name, field in full.model_fields.items()}
        assert written <= set(schemas[f"{layout}ConnectionWrite"]["properties"]), (source, written)


@pytest.mark.parametrize(("document", "with_secrets"), [("immuta-v2.yaml", True), ("immuta-v1.yaml", False)])
def test_what_each_platform_shows_matches_the_documents(document: str, with_secrets: bool) -> None:
    doc = yaml.safe_load((OPENAPI / document).read_text())
    check = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/ConnectionDetails",
                                                "components": doc["components"]})  # fmt: skip
    samples: list[tuple[SourceSpec[Any, Any], dict[str, Any]]] = [
        (GLUE, {"region": "eu-west-1", "accessKeyId": "AKIAEXAMPLEKEY123456"}),
        (TRINO_LIKE, {"host": "t", "username": "u"}),
        (FILE_LIKE, {"path": "a.db"}),
    ]
    for spec, configuration in samples:
        shown = connection_fields(integration(spec.source, stored(spec, configuration)), with_password=with_secrets)
        assert check.is_valid(shown), list(check.iter_errors(shown))
        assert not check.is_valid(shown | {"technology": "PostgreSQL"})
