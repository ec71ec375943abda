"""What the Immuta dialects read off the wire and write onto it (spec immuta.md §2, §3, §6, §7; A3, A5, A7, A19,
A34): connection keys, the connection object, cursors, page limits, object paths in raw URLs, the v1 object."""

import base64
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from pydantic import ValidationError

from services.api.immuta import (
    CURSOR,
    LIMIT,
    RESERVED_KEYS,
    ConnectionFields,
    NewConnection,
    check_key,
    decode_cursor,
    encode_cursor,
    page_limit,
    replace_model,
)
from services.api.immuta_v1 import object_path, v1_object_json
from services.api.problems import IMMUTA, STYLE, BadRequest, error_response
from services.core.data_objects import DataObject
from services.core.errors import CredentialsRequired, InvalidInput, NotFound
from services.core.model import Integration, Source
from services.core.objects import Grantee, Overrides, effective, key_of, object_id

# ---- connection keys ------------------------------------------------------------------------------

SPEC_RESERVED = "data connection object crawl search settings metadata permission sync bulk upgrade".split()


@pytest.mark.parametrize("key", ["a", "Z", "0", "-", "_", "pg-prod_01", "-leading", "_x", "A" * 128, "dataa", "data_",
                                 "xsync", "Searches", "bulk-1"])  # fmt: skip
def test_a_valid_key_is_returned_unchanged(key):
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", "A" * 129, "a b", "a.b", "a/b", "a%20b", "é", "straße", "\uff41", "٣", "Ⅻ", "a\n", "\na", "a\x00", "a+b",
     "a:b", "😀", " a", "a "],
)  # fmt: skip
def test_a_key_outside_the_pattern_is_refused_naming_the_rule(key):
    with pytest.raises(ValueError, match="1-128 characters: only letters, numbers, hyphens and underscores"):
        check_key(key)


def test_the_reserved_names_are_the_specs():
    assert set(SPEC_RESERVED) == RESERVED_KEYS


@pytest.mark.parametrize("name", SPEC_RESERVED)
@pytest.mark.parametrize("spelling", [str.lower, str.upper, str.title, lambda s: s[:-1] + s[-1].upper()])
def test_a_reserved_name_is_refused_in_any_case(name, spelling):
    with pytest.raises(ValueError, match="reserved name"):
        check_key(spelling(name))


# ---- the connection object ------------------------------------------------------------------------


def connection(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"technology": "PostgreSQL", "hostname": "db.example.com", "port": 5432,
                            "database": "shop", "username": "reader", "password": "s3cret"}  # fmt: skip
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def test_configuration_maps_the_sent_fields_to_ours_and_leaves_the_secret_out():
    fields = ConnectionFields.model_validate(
        connection(authenticationType="userPassword", sslmode="require", includeSchemas=["s*"], excludeSchemas=["x"])
    )
    assert fields.configuration() == {"host": "db.example.com", "port": 5432, "database": "shop",
                                      "username": "reader", "sslmode": "require", "includeSchemas": ["s*"],
                                      "excludeSchemas": ["x"]}  # fmt: skip
    assert fields.credentials() == {"password": "s3cret"}


def test_a_patch_configures_only_what_it_sends():
    assert ConnectionFields.model_validate({"port": 6543}).configuration() == {"port": 6543}
    assert ConnectionFields.model_validate({}).configuration() == {}
    assert ConnectionFields.model_validate({"hostname": "h"}).configuration() == {"host": "h"}


@pytest.mark.parametrize(("password", "credentials"), [
    ("[REDACTED]", None), (None, None), (..., None), ("new", {"password": "new"}),
    ("[redacted]", {"password": "[redacted]"}), (" [REDACTED]", {"password": " [REDACTED]"}),
])  # fmt: skip
def test_a_redacted_or_absent_password_means_unchanged(password, credentials):
    assert ConnectionFields.model_validate(connection(password=password)).credentials() == credentials


def test_a_new_connection_becomes_an_integration():
    new = NewConnection.model_validate({"connectionKey": "pg-prod", "connection": connection(sslmode="verify-full")})
    integration = new.integration()
    assert integration.external_id == "pg-prod" and integration.name == "pg-prod"
    assert integration.source is Source.POSTGRES
    assert integration.configuration == {"host": "db.example.com", "port": 5432, "database": "shop",
                                         "username": "reader", "sslmode": "verify-full"}  # fmt: skip
    assert integration.credentials == {"password": "s3cret"}


@pytest.mark.parametrize("key", ["-leading", "_leading", "A" * 128, "a-_-b"])
def test_every_valid_key_is_also_a_valid_external_id(key):
    new = NewConnection.model_validate({"connectionKey": key, "connection": connection()})
    assert new.integration().external_id == key


def test_a_new_connection_with_the_redacted_placeholder_as_its_password_is_refused():
    new = NewConnection.model_validate({"connectionKey": "k", "connection": connection(password="[REDACTED]")})
    with pytest.raises(BadRequest) as error:
        new.integration()
    assert error.value.errors[0][0] == "connection.password"


@pytest.mark.parametrize(
    "technology", ["Databricks", "postgresql", "POSTGRESQL", "postgres", "", None, 1, ["PostgreSQL"]]
)
def test_a_new_connection_of_a_technology_no_crawled_platform_has_is_refused(technology):
    with pytest.raises(ValidationError) as error:
        NewConnection.model_validate({"connectionKey": "k", "connection": connection(technology=technology)})
    assert any(e["loc"] == ("connection", "technology") for e in error.value.errors())


@pytest.mark.parametrize("missing", ["technology", "hostname", "port", "database", "username", "password"])
@pytest.mark.parametrize("as_null", [False, True])
def test_a_new_connection_without_a_required_field_is_refused_naming_it(missing, as_null):
    body = connection(**{missing: None if as_null else ...})
    with pytest.raises(ValidationError) as error:
        NewConnection.model_validate({"connectionKey": "k", "connection": body})
    assert [e["loc"] for e in error.value.errors()] == [("connection", missing)]
    with pytest.raises(ValidationError):
        replace_model(Source.POSTGRES).model_validate({"connection": body})  # v1 PUT: a full replacement too


@pytest.mark.parametrize(
    "body",
    [
        {"connection": connection()},
        {"connectionKey": "k"},
        {"connectionKey": "k", "connection": connection(), "extra": 1},
        {"connectionKey": "k", "connection": connection(warehouse="w")},
        {"connectionKey": "k", "connection": connection(authenticationType="oAuth")},
        {"connectionKey": "k", "connection": connection(sslmode="allow")},
        {"connectionKey": "k", "connection": connection(port="five")},
        {"connectionKey": "k", "connection": connection(hostname=["h"])},
        {"connectionKey": "a.b", "connection": connection()},
        {"connectionKey": "Settings", "connection": connection()},
        {"connectionKey": "", "connection": connection()},
        {"connectionKey": 7, "connection": connection()},
        {"connectionKey": "k", "connection": None},
    ],
)
def test_a_new_connection_with_a_bad_body_is_refused(body):
    with pytest.raises(ValidationError):
        NewConnection.model_validate(body)


# ---- cursors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "fields"),
    [
        ({"key": "pg-prod"}, ("key",)),
        ({"name": 'my table/ü %2F "quoted" 😀', "id": str(uuid.uuid4())}, ("name", "id")),
        ({"at": "2024-01-02T03:04:05.123456+00:00", "id": str(uuid.uuid4())}, ("at", "id")),
        ({"name": "", "id": ""}, ("id", "name")),
        ({"key": "a" * 1000}, ("key",)),
    ],
)
def test_a_cursor_round_trips_and_is_url_safe(position, fields):
    cursor = encode_cursor(position)
    assert decode_cursor(cursor, fields) == position
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_no_cursor_is_the_first_page():
    assert decode_cursor(None, ("key",)) is None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


VALID = encode_cursor({"name": "orders", "id": "6f1c0d0e-0000-4000-8000-000000000001"})


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "=",
        "not a cursor",
        "!!!!",
        "é",
        VALID[:-3],  # truncated
        "A" + VALID[1:],  # the opening brace altered
        VALID + "AAAA",  # trailing bytes after the JSON
        VALID.replace("J", "+"),
        "eyJpZCI6IjEyMzQ1In0=",  # the seed's example cursor {"id":"12345"}: another listing's
        encode_cursor({"key": "pg-prod"}),  # a connections cursor
        encode_cursor({"at": "2024-01-01T00:00:00+00:00", "id": "6f1c0d0e-0000-4000-8000-000000000001"}),  # a tasks one
        encode_cursor({"name": "orders"}),  # a field missing
        encode_cursor({"name": "orders", "id": "x", "key": "k"}),  # a field too many
        encode_cursor({"name": "orders", "id": 5}),  # not strings
        encode_cursor({"name": None, "id": "x"}),
        encode_cursor({"name": ["orders"], "id": "x"}),
        b64(b'["orders", "x"]'),
        b64(b'"orders"'),
        b64(b"null"),
        b64(b"{}"),
        b64(b'{"name": "a", "name": "b"}'),
        b64(b"\xff\xfe{}"),  # not UTF-8
        b64(b'{"name": NaN, "id": "x"}'),
        b64(b'{"name": "a", "id": ' + b"1" * 5000 + b"}"),  # an integer beyond Python's conversion limit
    ],
)
def test_a_tampered_or_foreign_cursor_is_a_bad_request_naming_it(raw):
    with pytest.raises(BadRequest) as error:
        decode_cursor(raw, ("name", "id"))
    assert error.value.errors[0][0] == CURSOR == "page[cursor]"
    assert "page[cursor]" in error.value.detail


def test_a_deeply_nested_cursor_is_a_bad_request():
    with pytest.raises(BadRequest) as error:
        decode_cursor(b64(b"[" * 5000), ("key",))
    assert error.value.errors[0][0] == CURSOR


# ---- page limits ----------------------------------------------------------------------------------


def query(text: str):
    return make_mocked_request("GET", f"/api/connections?{text}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 20), ("page[cursor]=x", 20), ("page[limit]=1", 1), ("page[limit]=100", 100), ("page[limit]=20", 20),
     ("page[limit]=007", 7), ("page%5Blimit%5D=3", 3)],
)  # fmt: skip
def test_the_limit_in_the_query_is_from_1_to_100_and_defaults_to_20(text, expected):
    assert page_limit(query(text)) == expected


@pytest.mark.parametrize(
    "value",
    ["0", "101", "-1", "1000", "ten", "1.5", "1e2", "+5", "%205", "5%20", "0x10", "1_0", "%D9%A3", "%C2%B2", "true",
     "9" * 40, "9" * 4300, "%00"],
)  # fmt: skip
def test_a_limit_in_the_query_outside_1_to_100_or_not_an_integer_is_a_bad_request_naming_it(value):
    with pytest.raises(BadRequest) as error:
        page_limit(query(f"page[limit]={value}"))
    assert error.value.errors[0][0] == LIMIT == "page[limit]"
    assert len(error.value.detail) < 200


@pytest.mark.parametrize("value", ["9" * 4301, "0" * 5000 + "5"])
def test_a_limit_with_thousands_of_digits_is_a_bad_request(value):
    with pytest.raises(BadRequest) as error:
        page_limit(query(f"page[limit]={value}"))
    assert error.value.errors[0][0] == LIMIT


@pytest.mark.parametrize(("value", "expected"), [(1, 1), (100, 100), (55, 55)])
def test_the_limit_of_a_body_is_taken_over_the_query(value, expected):
    assert page_limit(query("page[limit]=2"), value) == expected


@pytest.mark.parametrize("value", [0, 101, -5, True, False, 1.0, 2.5, [5], {"limit": 5}])
def test_a_limit_in_a_body_outside_1_to_100_or_not_an_integer_is_a_bad_request(value):
    with pytest.raises(BadRequest) as error:
        page_limit(query(""), value)
    assert error.value.errors[0][0] == LIMIT


# ---- object paths in raw URLs ---------------------------------------------------------------------


def path_of(raw_path: str, prefix: str = "/data/object/") -> tuple[str, str]:
    return object_path(make_mocked_request("GET", raw_path), prefix)


@pytest.mark.parametrize(
    ("raw_path", "key", "names"),
    [
        ("/data/object/pg", "pg", []),
        ("/data/object/pg/shop", "pg", ["shop"]),
        ("/data/object/pg/my%20db/public/order%20lines", "pg", ["my db", "public", "order lines"]),
        ("/data/object/pg/db/a%2Fb/t", "pg", ["db", "a/b", "t"]),  # an encoded '/' never splits a name
        ("/data/object/pg/db/a%2fb", "pg", ["db", "a/b"]),
        ("/data/object/pg/db/50%25/t", "pg", ["db", "50%", "t"]),
        ("/data/object/pg/db/%252F", "pg", ["db", "%2F"]),  # double encoding: the name is literally %2F
        ("/data/object/pg/db/%25%2F", "pg", ["db", "%/"]),
        ("/data/object/pg/caf%C3%A9/%E6%97%A5%E6%9C%AC/%F0%9F%90%98", "pg", ["café", "日本", "🐘"]),
        ("/data/object/pg/db/a+b", "pg", ["db", "a+b"]),  # '+' is not a space in a path
        ("/data/object/pg/db/s/t?searchText=x&limit=1", "pg", ["db", "s", "t"]),  # the query is not the path
        ("/data/object/pg/db/s/t%3Fx", "pg", ["db", "s", "t?x"]),
        ("/data/object/pg/Sales/PUBLIC", "pg", ["Sales", "PUBLIC"]),
    ],
)
def test_object_path_reads_percent_encoded_names_from_the_raw_url(raw_path, key, names):
    assert path_of(raw_path) == (key, key_of(names))


def test_object_path_after_each_prefix():
    assert path_of("/data/object/search/pg/db%2Fx/s", "/data/object/search/") == ("pg", key_of(["db/x", "s"]))
    assert path_of("/data/crawl/pg/db/s", "/data/crawl/") == ("pg", "db/s")
    assert path_of("/data/settings/pg", "/data/settings/") == ("pg", "")


@pytest.mark.parametrize(
    "raw_path",
    [
        "/data/object/pg/",  # a trailing slash is an empty segment
        "/data/object/pg/db/",
        "/data/object/pg/db/s/t/",
        "/data/object/pg//s",
        "/data/object/pg/db//t",
        "/data/object//db",
        "/data/object/",
        "/data/object/pg/db/s/t/column",  # deeper than the hierarchy
        "/data/object/pg/db/s/t/c/d",
    ],
)
def test_an_empty_segment_a_trailing_slash_or_a_too_deep_path_is_not_found(raw_path):
    with pytest.raises(NotFound):
        path_of(raw_path)


def test_a_nul_in_an_object_path_is_a_bad_request_naming_it():
    with pytest.raises(BadRequest) as error:
        path_of("/data/object/pg/db%00x")
    assert error.value.errors[0][0] == "objectPath"


@pytest.mark.parametrize("raw_path", ["/data/object/pg/db%FF", "/data/object/pg/db/%C3", "/data/object/%80"])
def test_a_path_segment_that_is_not_utf8_is_a_client_error(raw_path):
    with pytest.raises((BadRequest, NotFound)):
        path_of(raw_path)


# ---- the v1 object --------------------------------------------------------------------------------

CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
CONNECTION = Integration(
    id=uuid.UUID("0b7c1f5e-3a2d-4c4b-9e8f-1a2b3c4d5e6f"), external_id="pg", name="pg", source=Source.POSTGRES,
    enabled=True, owning_team_id=None, owning_team_external_id=None, configuration={}, schedule=None,
    has_credentials=True, created_at=CREATED, updated_at=CREATED,
)  # fmt: skip


def data_object(names: list[str], kind: str, chain: list[Overrides], *, own: list[Any] | None = None,
                below: set[Any] | None = None, connection: Integration = CONNECTION) -> DataObject:  # fmt: skip
    key = key_of(names)
    return DataObject(connection, key, kind, names[-1] if names else connection.external_id,
                      object_id(connection.id, key), CREATED, CREATED, None, effective(chain), own or [],
                      below or set())  # fmt: skip


def test_the_v1_object_of_an_active_table():
    owner = Grantee(id=7, type="group")
    obj = data_object(["my db", "a/b", "t 1"], "view", [Overrides(data_owners=(owner,)), Overrides(is_active=True)],
                      own=["isActive"], below={"dataOwners"})  # fmt: skip
    body = json.loads(json.dumps(v1_object_json(obj)))
    assert body["objectPath"] == ["pg", "my db", "a/b", "t 1"]  # raw names, one segment each (A7)
    assert body["technology"] == "PostgreSQL"
    assert body["state"] == "active"
    assert body["settings"] == {
        "isActive": {"value": True, "hasDescendantsWithOverrides": False},
        "activateNewChildren": {"value": True, "hasDescendantsWithOverrides": False},
        "dataOwners": {"value": [{"id": 7, "type": "group"}], "hasDescendantsWithOverrides": True},
        "infrastructureAdmins": {"value": [], "hasDescendantsWithOverrides": False},
    }
    assert body["overrides"] == ["isActive"]
    assert isinstance(body["dataSourceId"], int) and 0 < body["dataSourceId"] < 2**53
    assert body["remoteId"] == "my db.a/b.t 1"
    assert body["createdAt"] == "2024-01-02T03:04:05Z" and body["lastCrawled"] is None


def test_an_inactive_table_has_no_data_source_id_and_a_schema_never_has_one():
    inactive = v1_object_json(data_object(["db", "s", "t"], "table", [Overrides(is_active=False)]))
    assert inactive["state"] == "inactive" and inactive["dataSourceId"] is None
    assert v1_object_json(data_object(["db", "s"], "schema", []))["dataSourceId"] is None
    assert v1_object_json(data_object(["db"], "database", []))["dataSourceId"] is None


def test_the_v1_root_object_has_no_remote_id_and_shows_a_deactivated_connection_as_inactive():
    root = v1_object_json(data_object([], "connection", []))
    assert root["objectPath"] == ["pg"] and root["remoteId"] is None and root["state"] == "active"
    off = Integration(**{**CONNECTION.__dict__, "enabled": False})
    assert v1_object_json(data_object([], "connection", [], connection=off))["state"] == "inactive"


# ---- v1 PUT: a full replace of Immuta's fields only ------------------------------------------------


def test_a_full_replace_keeps_our_extensions_the_body_leaves_out():
    stored = dataclasses.replace(CONNECTION, configuration={
        "host": "old", "port": 5432, "database": "db", "username": "u", "sslmode": "verify-full",
        "includeSchemas": ["sales"]})  # fmt: skip
    sent = replace_model(Source.POSTGRES).model_validate({"connection": {
        "technology": "PostgreSQL", "hostname": "new", "port": 6432, "database": "db2", "username": "u2",
        "password": "pw"}}).connection  # fmt: skip
    assert sent.replaced_configuration(stored.configuration) == {
        "host": "new", "port": 6432, "database": "db2", "username": "u2", "sslmode": "verify-full",
        "includeSchemas": ["sales"]}  # fmt: skip
    again = ConnectionFields.model_validate({"hostname": "h", "sslmode": "disable", "includeSchemas": []})
    assert again.replaced_configuration(stored.configuration) == {"host": "h", "sslmode": "disable",
                                                                  "includeSchemas": []}  # fmt: skip


# ---- errors in Immuta's field names ----------------------------------------------------------------


def immuta_request() -> Any:
    app = web.Application()
    app[STYLE] = IMMUTA
    return make_mocked_request("PATCH", "/api/connections/pg", app=app)


@pytest.mark.parametrize(("ours", "theirs"), [
    ("configuration.host", "connection.hostname"), ("configuration.port", "connection.port"),
    ("credentials.password", "connection.password"),
])  # fmt: skip
def test_domain_errors_name_immutas_fields(ours, theirs):
    response = error_response(InvalidInput(f"{ours}: not valid", field=ours), immuta_request())
    body = json.loads(response.body)
    assert response.status == 400 and body["errors"] == [{"field": theirs, "message": f"{theirs}: not valid"}]
    assert body["message"] == body["detail"] and body["statusCode"] == 400


def test_missing_credentials_name_the_password_field():
    response = error_response(InvalidInput("credentials are required", field="credentials"), immuta_request())
    assert json.loads(response.body)["errors"][0]["field"] == "connection.password"


def test_the_credentials_rule_is_a_422_that_names_the_password():
    detail = "Changing configuration.host changes where the stored credentials are sent; send `credentials` again."
    response = error_response(CredentialsRequired(detail, field="credentials"), immuta_request())
    body = json.loads(response.body)
    assert response.status == 422 and body["errors"][0]["field"] == "connection.password"
    assert "connection.hostname" in body["detail"] and "`connection.password`" in body["detail"]
    assert "stored credentials are sent" in body["detail"]  # prose stays prose
