"""Data objects (spec immuta.md §3, §4, §5 forceRecursive; A6, A10, A31): object keys and their escaping, lineage,
subtrees, ids, inherited settings and what a sync covers. Pure functions: no database."""

import hashlib
import unicodedata
import uuid

import pytest
from pydantic import ValidationError

from services.core.data_objects import object_key_of
from services.core.errors import NotFound
from services.core.objects import (
    NONE,
    ROOT,
    CrawlScope,
    Grantee,
    Overrides,
    SettingsChange,
    data_source_id,
    effective,
    effective_of,
    escape,
    in_subtree,
    key_of,
    lineage,
    names_of,
    object_id,
    parent_of,
    remote_id,
    unescape,
)

# ---- object keys ---------------------------------------------------------------------------------

AWKWARD_NAMES = [
    "sales",
    "my table",  # a space
    "a/b",  # a '/' inside one name
    "/",
    "//",
    "50%",
    "%",
    "%2F",  # literally percent-two-F: must not come back as '/'
    "%25",
    "%252F",
    "a%2Fb/c",
    "%/",
    "100% / 2",
    "Ünïcödé",
    "日本語のテーブル",
    "emoji 🐘",
    " leading and trailing ",
    ".",
    "..",
    "a.b",  # '.' is the remoteId separator, not a key separator
    "tab\there",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_one_name_is_one_segment_and_comes_back_unchanged(name):
    segment = escape(name)
    assert "/" not in segment
    assert unescape(segment) == name
    assert names_of(key_of([name])) == [name]


def test_a_full_path_of_awkward_names_round_trips_and_keeps_its_depth():
    for i in range(len(AWKWARD_NAMES) - 2):
        names = AWKWARD_NAMES[i : i + 3]
        key = key_of(names)
        assert key.count("/") == 2, key
        assert names_of(key) == names


def test_the_escaping_matches_the_asset_keys_of_the_connector():
    assert key_of(["my db", "a/b", "c%d"]) == "my db/a%2Fb/c%25d"
    assert names_of("my db/a%2Fb/c%25d") == ["my db", "a/b", "c%d"]
    # A lower-case escape is not one of ours: the name is taken literally.
    assert names_of("a%2fb") == ["a%2fb"]


def test_the_root_is_the_empty_key_and_has_no_names():
    assert key_of([]) == ROOT == ""
    assert names_of(ROOT) == []
    assert parent_of(ROOT) is None


def test_names_are_matched_exactly():
    assert key_of(["Sales"]) != key_of(["sales"])
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert key_of([nfc]) != key_of([nfd])
    assert names_of(key_of([nfd])) == [nfd]


def test_parent_and_lineage_split_on_separators_only():
    key = key_of(["db", "a/b", "t%2F"])
    assert parent_of(key) == key_of(["db", "a/b"])
    assert parent_of(key_of(["db"])) == ROOT
    assert lineage(ROOT) == [ROOT]
    assert lineage("db") == ["", "db"]
    assert lineage("db/s/t") == ["", "db", "db/s", "db/s/t"]
    assert lineage(key) == ["", "db", key_of(["db", "a/b"]), key]
    assert lineage("db/s/t/col") == ["", "db", "db/s", "db/s/t", "db/s/t/col"]


def test_remote_id_joins_the_raw_names_with_dots():
    assert remote_id(["db", "public", "orders"]) == "db.public.orders"
    assert remote_id(names_of(key_of(["my db", "a/b"]))) == "my db.a/b"
    assert remote_id([]) == ""


@pytest.mark.parametrize(
    ("key", "root", "inside"),
    [
        ("db/sales", "db/sales", True),
        ("db/sales/t", "db/sales", True),
        ("db/sales/t/c", "db/sales", True),
        ("db/sal", "db/sales", False),  # no prefix match either way
        ("db/sales", "db/sal", False),
        ("db/sales2/t", "db/sales", False),
        ("db/sales", "db/sales/t", False),  # an ancestor is not in its descendant's subtree
        ("db", "db/sales", False),
        ("other/sales", "db/sales", False),
        ("db/sales", ROOT, True),
        (ROOT, ROOT, True),
        (ROOT, "db", False),
        (key_of(["db", "a/b"]), key_of(["db", "a"]), False),  # a '/' inside a name is no separator
        (key_of(["db", "a", "b"]), key_of(["db", "a"]), True),
        (key_of(["db", "a", "b"]), key_of(["db", "a/b"]), False),
    ],
)
def test_in_subtree(key, root, inside):
    assert in_subtree(key, root) is inside


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ([], ROOT),
        (["db"], "db"),
        (["my db", "a/b", "c%d"], "my db/a%2Fb/c%25d"),
        (["d", "s", "t"], "d/s/t"),
    ],
)
def test_object_key_of_a_path_below_the_connection(path, key):
    assert object_key_of(path) == key


@pytest.mark.parametrize(
    "path",
    [
        ["db", "s", "t", "column"],  # columns are not data objects (A6): deeper than the hierarchy
        ["a", "b", "c", "d", "e"],
        [""],
        ["db", ""],
        ["", "s"],
        ["db", "", "t"],
    ],
)
def test_object_key_of_a_too_deep_path_or_an_empty_name_is_not_found(path):
    with pytest.raises(NotFound):
        object_key_of(path)


# ---- ids ------------------------------------------------------------------------------------------

INTEGRATION = uuid.UUID("0b7c1f5e-3a2d-4c4b-9e8f-1a2b3c4d5e6f")
OTHER_INTEGRATION = uuid.UUID("7e3f9a10-0000-4000-8000-00000000abcd")


def test_object_id_is_deterministic_and_differs_per_integration_and_key():
    keys = [ROOT, "db", "db/s", "db/s/t", "db/s/t2", key_of(["db", "a/b"]), "db/a/b", "DB"]
    ids = {(integration, key): object_id(integration, key) for integration in (INTEGRATION, OTHER_INTEGRATION)
           for key in keys}  # fmt: skip
    assert len(set(ids.values())) == len(ids)
    for (integration, key), oid in ids.items():
        assert object_id(integration, key) == oid
        assert object_id(uuid.UUID(str(integration).upper()), key) == oid  # the uuid, not its spelling


@pytest.mark.parametrize("key", [ROOT, "db", "db/s/t", key_of(["é", "a/b", "100%"])])
def test_object_id_is_an_rfc_4122_name_based_uuid(key):
    oid = object_id(INTEGRATION, key)
    assert oid.variant == uuid.RFC_4122
    assert oid.version == 3
    assert str(oid)[14] == "3" and str(oid)[19] in "89ab"
    # All the other digits are the MD5 of "<integration>/<key>", the assets.object_id expression.
    digest = hashlib.md5(f"{INTEGRATION}/{key}".encode()).hexdigest()
    assert oid.hex[:12] + oid.hex[13:16] + oid.hex[17:] == digest[:12] + digest[13:16] + digest[17:]


# Computed by PostgreSQL 15 with the generated column's expression of migration 0005 (assets.object_id):
#   overlay(overlay(md5(integration_id::text || '/' || asset_key) PLACING '3' FROM 13 FOR 1)
#           PLACING '8' FROM 17 FOR 1)::uuid
# Comparing with a live assets row needs a database: that belongs in the integration tests, not here.
POSTGRES_IDS = [
    (ROOT, "fc349174-4263-3b25-8c4b-152ca8b345cb"),
    ("db", "e107dd22-aacf-387c-80e7-a1f534ab515d"),
    ("my db/a%2Fb/c%25d", "9ca4206f-e044-3f4a-850f-f4e9317fd706"),
    ("é/日本/Ω 1", "1247f3fd-90c5-3bef-8f1f-1d31aaebb618"),
]


@pytest.mark.parametrize(("key", "expected"), POSTGRES_IDS)
def test_object_id_equals_the_id_postgresql_computes(key, expected):
    assert object_id(INTEGRATION, key) == uuid.UUID(expected)


def test_data_source_id_is_stable_positive_and_exact_in_json():
    oids = [object_id(INTEGRATION, f"db/s/t{i}") for i in range(2000)]
    oids += [uuid.UUID(int=0), uuid.UUID(int=1), uuid.UUID(int=2**128 - 1), uuid.UUID(int=1 << 76)]
    values = [data_source_id(oid) for oid in oids]
    for oid, value in zip(oids, values, strict=True):
        assert type(value) is int
        assert 0 < value < 2**53
        assert float(value) == value
        assert data_source_id(uuid.UUID(str(oid))) == value
    # Distinct objects get distinct numbers (52 bits of an MD5: a collision here would be a bug).
    assert len(set(values[:2000])) == 2000


def test_data_source_id_is_the_first_52_bits_of_the_object_id():
    # Clients keep dataSourceIds: the formula must not change. fc349174-4263-3... is a PostgreSQL-computed id.
    assert data_source_id(uuid.UUID("fc349174-4263-3b25-8c4b-152ca8b345cb")) == 0xFC34917442633
    assert data_source_id(object_id(INTEGRATION, ROOT)) == 0xFC34917442633
    assert data_source_id(uuid.UUID(int=2**128 - 1)) == 2**52 - 1
    assert data_source_id(uuid.UUID(int=(1 << 76) - 1)) == 1  # zero is not an id


# ---- settings -------------------------------------------------------------------------------------

U1, U2, G1 = Grantee(id=1, type="user"), Grantee(id=2, type="user"), Grantee(id=1, type="group")


def test_defaults_without_any_override():
    for chain in ([], [NONE], [NONE, NONE, NONE, NONE]):
        settings = effective(chain)
        assert settings.is_active is True
        assert settings.activate_new_children is True
        assert settings.data_owners == ()
        assert settings.infrastructure_admins == ()
    assert effective_of("db/s/t", {}) == effective([])


def test_the_nearest_override_wins():
    assert effective([Overrides(is_active=False), NONE, NONE]).is_active is False
    assert effective([Overrides(is_active=False), Overrides(is_active=True), NONE]).is_active is True
    assert effective([Overrides(is_active=True), NONE, Overrides(is_active=False)]).is_active is False
    chain = [Overrides(activate_new_children=False), Overrides(is_active=False, activate_new_children=True)]
    settings = effective(chain)
    assert (settings.is_active, settings.activate_new_children) == (False, True)
    # The settings are independent of each other.
    settings = effective([Overrides(activate_new_children=False)])
    assert (settings.is_active, settings.activate_new_children) == (True, False)


def test_effective_of_follows_the_lineage_of_escaped_keys():
    parent = key_of(["db", "a/b"])
    overrides = {parent: Overrides(is_active=False), key_of(["db", "a"]): Overrides(is_active=True)}
    assert effective_of(key_of(["db", "a/b", "t"]), overrides).is_active is False
    assert effective_of(key_of(["db", "a", "b"]), overrides).is_active is True
    assert effective_of("db", overrides).is_active is True


def test_a_childs_own_override_survives_a_later_parent_change():
    overrides = {
        "db/s/kept": Overrides(is_active=True),  # equal to the inherited value when set (A31)
        "db/s/frozen": Overrides(activate_new_children=True),
    }
    parent = overrides.get("db/s", NONE).changed(
        SettingsChange.model_validate({"isActive": False, "activateNewChildren": False}), at_root=False
    )
    overrides["db/s"] = parent
    assert effective_of("db/s/kept", overrides).is_active is True
    assert effective_of("db/s/other", overrides).is_active is False  # no override: follows the change
    assert effective_of("db/s/kept/col", overrides).is_active is True
    assert effective_of("db/s/frozen", overrides).activate_new_children is True
    assert effective_of("db/s/frozen", overrides).is_active is False
    assert effective_of("db/s", overrides).is_active is False
    assert effective_of("db", overrides).is_active is True
    # A second parent change still reaches the children without an override of their own.
    overrides["db/s"] = overrides["db/s"].changed(SettingsChange.model_validate({"isActive": True}), at_root=False)
    assert effective_of("db/s/other", overrides).is_active is True
    assert effective_of("db/s/other", overrides).activate_new_children is False
    assert effective_of("db/s/frozen", overrides).activate_new_children is True


def test_owners_and_admins_are_the_union_along_the_lineage_without_duplicates():
    overrides = {
        ROOT: Overrides(data_owners=(U1,), infrastructure_admins=(G1,)),
        "db": Overrides(data_owners=(G1, U1)),
        "db/s": Overrides(data_owners=(U1, U2), infrastructure_admins=(G1, U2)),
        "db/other": Overrides(data_owners=(Grantee(id=9, type="group"),)),
    }
    table = effective_of("db/s/t", overrides)
    assert table.data_owners == (U1, G1, U2)  # user 1 and group 1 are different grantees
    assert table.infrastructure_admins == (G1, U2)
    assert effective_of("db", overrides).data_owners == (U1, G1)
    assert effective_of(ROOT, overrides).data_owners == (U1,)
    assert Grantee(id=9, type="group") not in table.data_owners  # a sibling's list is not inherited


def test_changed_at_the_root_replaces_the_lists():
    root = Overrides(data_owners=(U1, U2), infrastructure_admins=(G1,))
    after = root.changed(SettingsChange.model_validate({"dataOwners": [{"id": 2, "type": "user"}]}), at_root=True)
    assert after.data_owners == (U2,)
    assert after.infrastructure_admins == (G1,)  # not sent: unchanged
    emptied = root.changed(SettingsChange.model_validate({"dataOwners": []}), at_root=True)
    assert emptied.data_owners == ()
    assert effective_of("db/s", {ROOT: emptied}).data_owners == ()  # removal reaches every descendant
    deduplicated = NONE.changed(SettingsChange.model_validate({"dataOwners": [U1, U1, G1]}), at_root=True)
    assert deduplicated.data_owners == (U1, G1)
    assert root.data_owners == (U1, U2)  # Overrides are values: changed() returns a new one


def test_changed_below_the_root_adds_to_the_lists():
    below = Overrides(data_owners=(U1,))
    after = below.changed(SettingsChange.model_validate({"dataOwners": [U2, U1], "infrastructureAdmins": [G1]}),
                          at_root=False)  # fmt: skip
    assert after.data_owners == (U1, U2)
    assert after.infrastructure_admins == (G1,)
    assert below.changed(SettingsChange.model_validate({"dataOwners": []}), at_root=False).data_owners == (U1,)


def test_changed_keeps_what_was_not_sent():
    current = Overrides(is_active=False, activate_new_children=False, data_owners=(U1,), infrastructure_admins=(G1,))
    assert current.changed(SettingsChange(), at_root=False) == current
    assert current.changed(SettingsChange(), at_root=True) == current
    after = current.changed(SettingsChange.model_validate({"activateNewChildren": True}), at_root=False)
    assert after == Overrides(False, True, (U1,), (G1,))


def test_names_list_the_settings_set_on_the_object_itself_falsy_values_included():
    assert NONE.names == []
    assert Overrides(is_active=False).names == ["isActive"]
    assert Overrides(activate_new_children=False, data_owners=()).names == ["activateNewChildren", "dataOwners"]
    everything = Overrides(True, True, (U1,), ())
    assert everything.names == ["isActive", "activateNewChildren", "dataOwners", "infrastructureAdmins"]
    assert everything.value("infrastructureAdmins") == ()
    assert NONE.value("dataOwners") is None


def test_overrides_from_a_stored_row():
    row = {"is_active": False, "activate_new_children": None, "data_owners": [{"id": 3, "type": "group"}],
           "infrastructure_admins": None}  # fmt: skip
    overrides = Overrides.from_row(row)
    assert overrides == Overrides(is_active=False, data_owners=(Grantee(id=3, type="group"),))
    assert overrides.names == ["isActive", "dataOwners"]


def test_settings_change_takes_the_wire_names():
    change = SettingsChange.model_validate(
        {"isActive": False, "activateNewChildren": True, "dataOwners": [{"id": 1, "type": "user"}],
         "infrastructureAdmins": [{"id": 2**53, "type": "group"}]}
    )  # fmt: skip
    assert change.is_active is False and change.activate_new_children is True
    assert change.data_owners == [U1] and change.infrastructure_admins == [Grantee(id=2**53, type="group")]
    assert SettingsChange.model_validate({}) == SettingsChange()


@pytest.mark.parametrize(
    "body",
    [
        {"isPublic": True},  # unknown setting
        {"overrides": {"isActive": False}},
        {"isActive": False, "owners": []},
        {"isActive": "maybe"},
        {"isActive": []},
        {"isActive": {"value": False}},
        {"activateNewChildren": 2},
        {"dataOwners": {"id": 1, "type": "user"}},  # not a list
        {"dataOwners": "1"},
        {"dataOwners": [1]},
        {"dataOwners": [[1, "user"]]},
        {"dataOwners": [{"id": 1}]},
        {"dataOwners": [{"type": "user"}]},
        {"dataOwners": [{"id": 1, "type": "role"}]},  # principal type other than user/group
        {"dataOwners": [{"id": 1, "type": "USER"}]},
        {"infrastructureAdmins": [{"id": 1, "type": "apiKey"}]},
        {"infrastructureAdmins": [{"id": 1, "type": None}]},
        {"dataOwners": [{"id": 1, "type": "user", "name": "x"}]},
        {"dataOwners": [{"id": -1, "type": "user"}]},
        {"dataOwners": [{"id": 2**53 + 1, "type": "user"}]},
        {"dataOwners": [{"id": 1.5, "type": "user"}]},
        {"dataOwners": [{"id": "one", "type": "user"}]},
        {"dataOwners": [{"id": i, "type": "user"} for i in range(1001)]},
    ],
)
def test_settings_change_rejects_unknown_settings_wrong_types_and_other_grantee_types(body):
    with pytest.raises(ValidationError):
        SettingsChange.model_validate(body)


@pytest.mark.parametrize("value", ["true", "yes", 1, 0.0])
def test_settings_change_rejects_a_non_boolean_that_looks_like_one(value):
    with pytest.raises(ValidationError):
        SettingsChange.model_validate({"isActive": value})


@pytest.mark.parametrize("value", ["5", 5.0, True])
def test_settings_change_rejects_a_grantee_id_that_is_not_an_integer(value):
    with pytest.raises(ValidationError):
        SettingsChange.model_validate({"dataOwners": [{"id": value, "type": "user"}]})


@pytest.mark.parametrize("name", ["is_active", "activate_new_children", "data_owners", "infrastructure_admins"])
def test_settings_change_rejects_the_python_field_names(name):
    with pytest.raises(ValidationError):
        SettingsChange.model_validate({name: False if "activ" in name else []})


# ---- what a sync covers ---------------------------------------------------------------------------

KEYS = [
    ROOT, "db", "db/sales", "db/sales/t", "db/sales/t/c", "db/sal", "db/sal/t", "db/sales2/t",
    "db/other", "db/other/v", "db/other/v/c", key_of(["db", "sales/x", "t"]),
]  # fmt: skip


def covered(scope: CrawlScope) -> set[str]:
    return {key for key in KEYS if scope.covers(key)}


@pytest.mark.parametrize(
    "scope",
    [
        CrawlScope(),
        CrawlScope(root=ROOT),
        CrawlScope(overrides={}),
        CrawlScope(overrides={"db/sales": True, ROOT: True}),
        CrawlScope(force_recursive=True, overrides={"db/sales": False, ROOT: False}),
    ],
)
def test_everything_when_the_whole_connection_is_crawled_and_nothing_is_skipped(scope):
    assert scope.everything is True
    assert covered(scope) == set(KEYS)


@pytest.mark.parametrize(
    "scope",
    [
        CrawlScope(root="db/sales"),
        CrawlScope(root="db"),
        CrawlScope(overrides={"db/sales": False}),
        CrawlScope(overrides={ROOT: False}),
        CrawlScope(root=ROOT, overrides={"db/sales/t": False, "db/other": True}),
    ],
)
def test_no_fast_path_when_a_path_or_an_inactive_object_limits_the_crawl(scope):
    assert scope.everything is False
    assert covered(scope) != set(KEYS)


def test_a_sub_path_covers_its_subtree_only():
    assert covered(CrawlScope(root="db/sales")) == {"db/sales", "db/sales/t", "db/sales/t/c"}
    assert covered(CrawlScope(root="db/sales/t")) == {"db/sales/t", "db/sales/t/c"}
    assert covered(CrawlScope(root=key_of(["db", "sales/x"]))) == {key_of(["db", "sales/x", "t"])}
    assert covered(CrawlScope(root="db/sal", force_recursive=True)) == {"db/sal", "db/sal/t"}


def test_an_inactive_subtree_is_skipped_unless_forced():
    scope = CrawlScope(overrides={"db/sales": False})
    assert covered(scope) == set(KEYS) - {"db/sales", "db/sales/t", "db/sales/t/c"}
    assert covered(CrawlScope(overrides={"db/sales": False}, force_recursive=True)) == set(KEYS)
    # An inactive connection root: nothing is listed, unless forced.
    assert covered(CrawlScope(overrides={ROOT: False})) == set()
    assert covered(CrawlScope(overrides={ROOT: False}, force_recursive=True)) == set(KEYS)
    # A sub-path inside an inactive subtree.
    assert covered(CrawlScope(root="db/sales/t", overrides={"db": False})) == set()
    assert covered(CrawlScope(root="db/sales/t", overrides={"db": False}, force_recursive=True)) == {
        "db/sales/t", "db/sales/t/c"}  # fmt: skip


def test_an_active_override_inside_an_inactive_subtree_is_covered():
    scope = CrawlScope(overrides={"db": False, "db/sales/t": True, "db/other/v": False})
    assert covered(scope) == {ROOT, "db/sales/t", "db/sales/t/c"}
    # ... and again the nearest override decides below it.
    scope = CrawlScope(overrides={"db": False, "db/sales": True, "db/sales/t": False})
    assert covered(scope) == {ROOT, "db/sales"}
    scope = CrawlScope(root="db/sales", overrides={"db": False, "db/sales/t": True})
    assert covered(scope) == {"db/sales/t", "db/sales/t/c"}


def test_columns_follow_their_table():
    column = "db/sales/t/c"
    assert CrawlScope(overrides={"db/sales/t": False}).covers(column) is False
    assert CrawlScope(overrides={"db/sales/t": False}).covers("db/sales/t2/c") is True
    assert CrawlScope(overrides={"db/sales": False, "db/sales/t": True}).covers(column) is True
    assert CrawlScope(root="db/sales/t").covers(column) is True
    assert CrawlScope(root="db/sales/t2").covers(column) is False


def test_a_slash_inside_a_name_does_not_make_an_inactive_subtree():
    scope = CrawlScope(overrides={key_of(["db", "sales/x"]): False})
    assert scope.covers(key_of(["db", "sales", "x"])) is True
    assert scope.covers(key_of(["db", "sales/x", "t"])) is False
    assert scope.covers("db/sales") is True
