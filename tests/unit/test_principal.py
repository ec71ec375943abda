"""Who may see and edit an integration: team grants, and organization owners for unowned integrations."""

import uuid

from services.core.model import Principal

TEAM = uuid.uuid4()
OTHER_TEAM = uuid.uuid4()


def team_key(*permissions: str) -> Principal:
    return Principal(key_id=uuid.uuid4(), name="team key", org_owner=False,
                     team_permissions={TEAM: frozenset(permissions)})  # fmt: skip


def test_a_team_key_sees_only_its_teams_integrations():
    key = team_key("INGESTION_VIEW")
    assert key.can_view(TEAM)
    assert not key.can_view(OTHER_TEAM)


def test_only_organization_owners_see_integrations_without_an_owning_team():
    owner = Principal(key_id=uuid.uuid4(), name="owner", org_owner=True)
    assert owner.can_view(None) and owner.can_edit(None)
    key = team_key("INGESTION_VIEW", "INGESTION_EDIT")
    assert not key.can_view(None)
    assert not key.can_edit(None)


def test_editing_needs_the_edit_permission_on_the_owning_team():
    assert team_key("INGESTION_VIEW", "INGESTION_EDIT").can_edit(TEAM)
    assert not team_key("INGESTION_VIEW").can_edit(TEAM)
    assert not team_key("INGESTION_VIEW", "INGESTION_EDIT").can_edit(OTHER_TEAM)
