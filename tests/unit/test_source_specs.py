"""Source platform specs: documented fields, declared identity and secrets, lazily loaded plug-ins."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

from services.core.errors import InvalidInput
from services.core.model import Source
from services.core.sources import SPECS, SourceReport, spec_for
from services.core.sources.spec import MAX_REPORTED_WARNINGS

POSTGRES = spec_for(Source.POSTGRES)
STORED = {"host": "db.example.test", "port": 5432, "database": "shop", "username": "crawler", "sslmode": "verify-full",
          "includeSchemas": [], "excludeSchemas": []}  # fmt: skip


@pytest.mark.parametrize("spec", SPECS.values(), ids=lambda spec: spec.name)
def test_every_field_of_every_spec_is_described(spec):
    models: list[type[BaseModel]] = [spec.config_model, spec.credentials_model]
    undocumented = [f"{m.__name__}.{name}" for m in models for name, f in m.model_fields.items() if not f.description]
    assert undocumented == []


@pytest.mark.parametrize("spec", [s for s in SPECS.values() if s.crawled], ids=lambda spec: spec.name)
def test_every_crawled_spec_names_a_plugin_factory_that_loads(spec):
    assert callable(spec.plugin_factory())


@pytest.mark.parametrize("spec", [s for s in SPECS.values() if not s.crawled], ids=lambda spec: spec.name)
def test_an_uploaded_platform_has_nothing_to_configure_and_no_secrets(spec):
    assert spec.parse_config({}).model_dump() == {} and spec.secret_fields == frozenset()
    with pytest.raises(InvalidInput):
        spec.parse_credentials({"password": "x"})
    with pytest.raises(ValueError, match="not crawled"):
        spec.plugin_factory()


def test_postgres_declares_what_decides_where_and_as_whom_credentials_go():
    assert POSTGRES.identity_fields == ("host", "port", "database", "username", "sslmode")
    assert POSTGRES.secret_fields == frozenset({"password"})
    config = POSTGRES.parse_config(STORED | {"port": 6432})
    assert [(e.host, e.port) for e in POSTGRES.endpoints(config)] == [("db.example.test", 6432)]


@pytest.mark.parametrize(
    ("change", "changed"),
    [({"host": "evil.example.test"}, ["configuration.host"]), ({"port": 6432}, ["configuration.port"]),
     ({"database": "other"}, ["configuration.database"]), ({"username": "postgres"}, ["configuration.username"]),
     ({"sslmode": "disable"}, ["configuration.sslmode"]), ({"includeSchemas": ["sales"]}, []),
     ({"excludeSchemas": ["pg_*"]}, []), ({}, [])],
)  # fmt: skip
def test_identity_changes_are_named_and_schema_filters_are_not_identity(change, changed):
    assert POSTGRES.changed_identity(STORED, POSTGRES.parse_config(STORED | change)) == changed


def test_a_default_written_out_is_no_identity_change():
    before = {k: v for k, v in STORED.items() if k != "port"}
    assert POSTGRES.changed_identity(before, POSTGRES.parse_config(STORED)) == []


def test_a_stored_configuration_the_model_no_longer_accepts_counts_as_every_identity_field_changed():
    changed = POSTGRES.changed_identity({"hostname": "old-layout"}, POSTGRES.parse_config(STORED))
    assert changed == [f"configuration.{name}" for name in POSTGRES.identity_fields]


def test_invalid_input_names_the_field_without_echoing_the_value():
    with pytest.raises(InvalidInput) as error:
        POSTGRES.parse_credentials({"password": "", "extra": "s3cret-value"})
    assert error.value.field.startswith("credentials.") and "s3cret-value" not in error.value.detail


def test_the_api_does_not_import_source_client_code():
    code = "import sys, services.api.app, services.api.__main__; print(sorted(m for m in sys.modules " \
           "if m.startswith('services.connector')))"  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_report_keeps_a_bounded_number_of_warnings_and_counts_the_rest():
    report = SourceReport()
    for i in range(MAX_REPORTED_WARNINGS + 5):
        report.warn(f"table t{i} skipped: " + "x" * 1000)
    assert len(report.warnings) == MAX_REPORTED_WARNINGS and report.dropped == 5
    assert all(len(w) <= 500 for w in report.warnings)
    assert report.summary().endswith("; and 100 more (in the run's events)")
