"""Data objects: the asset hierarchy above columns, addressed by object key, with settings inherited downwards.

Pure functions shared by every dialect, the connector and the store:
- an object key is the asset key (`db/schema/table`, each name escaped so that '/' only separates); the
  connection itself is the root, key '';
- an object id is a name-based UUID of (integration, key): stable across crawls, deletion and rediscovery;
- settings: `isActive` and `activateNewChildren` take the nearest value set on the object or an ancestor
  (default true); `dataOwners` and `infrastructureAdmins` are the union of the connection's lists and every
  list set on the object and its ancestors (below the connection they can only be added to).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ROOT = ""
MAX_DEPTH = 3  # database / schema / table-level object below the connection
# Asset kinds that are data objects, and their normalized type. Columns are assets, not data objects.
NORMALIZED_TYPES = {
    "database": "DATABASE",
    "schema": "SCHEMA",
    "table": "TABLE",
    "view": "TABLE",
    "materialized_view": "TABLE",
    "external_table": "TABLE",
    "foreign_table": "TABLE",
}
OBJECT_KINDS = tuple(NORMALIZED_TYPES)
TABLE_LEVEL = frozenset(kind for kind, normalized in NORMALIZED_TYPES.items() if normalized == "TABLE")


def kinds_of(kind: str | None, normalized_type: str | None) -> list[str] | None:
    """The object kinds ('connection' for the root) matching a type and a normalized type; None: any."""
    kinds: set[str] | None = None if kind is None else {kind}
    if normalized_type is not None:
        by_normalized = {k for k, n in {**NORMALIZED_TYPES, "connection": "CONNECTION"}.items() if n == normalized_type}
        kinds = by_normalized if kinds is None else kinds & by_normalized
    return sorted(kinds) if kinds is not None else None


def escape(name: str) -> str:
    """One name as one segment of a '/'-separated key."""
    return name.replace("%", "%25").replace("/", "%2F")


def unescape(segment: str) -> str:
    return segment.replace("%2F", "/").replace("%25", "%")


def key_of(names: Sequence[str]) -> str:
    return "/".join(escape(name) for name in names)


def names_of(key: str) -> list[str]:
    return [unescape(segment) for segment in key.split("/")] if key else []


def parent_of(key: str) -> str | None:
    if key == ROOT:
        return None
    return key.rpartition("/")[0]


def lineage(key: str) -> list[str]:
    """The keys from the root down to `key` itself: '', 'db', 'db/s', 'db/s/t'."""
    keys = [ROOT]
    if key:
        segments = key.split("/")
        keys.extend("/".join(segments[: i + 1]) for i in range(len(segments)))
    return keys


def in_subtree(key: str, root: str) -> bool:
    return root == ROOT or key == root or key.startswith(root + "/")


def object_id(integration_id: uuid.UUID, key: str) -> uuid.UUID:
    """Name-based (MD5, version 3 layout) id; the same expression as the assets.object_id column."""
    digest = hashlib.md5(f"{integration_id}/{key}".encode(), usedforsecurity=False).hexdigest()
    return uuid.UUID(digest[:12] + "3" + digest[13:16] + "8" + digest[17:])


def data_source_id(oid: uuid.UUID) -> int:
    """A stable integer for a table-level object (Immuta's dataSourceId): 52 bits, exact in JSON numbers."""
    return (oid.int >> 76) or 1


def remote_id(names: Sequence[str]) -> str:
    return ".".join(names)


# ---- settings -------------------------------------------------------------------------------

SettingName = Literal["isActive", "activateNewChildren", "dataOwners", "infrastructureAdmins"]
SETTING_NAMES: tuple[SettingName, ...] = ("isActive", "activateNewChildren", "dataOwners", "infrastructureAdmins")
# Each setting's attribute on Overrides and EffectiveSettings, which is also its column in object_settings.
SETTING_ATTRIBUTES: dict[SettingName, str] = {
    "isActive": "is_active",
    "activateNewChildren": "activate_new_children",
    "dataOwners": "data_owners",
    "infrastructureAdmins": "infrastructure_admins",
}
LIST_SETTINGS: tuple[SettingName, ...] = ("dataOwners", "infrastructureAdmins")


class Grantee(BaseModel):
    """A user or group named by Immuta id; stored as given."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: int = Field(ge=0, le=2**53)
    type: Literal["user", "group"]


class SettingsChange(BaseModel):
    """Settings to set on one object; absent ones stay as they are. Strict: "yes" or 1 is not a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True)

    is_active: bool | None = Field(default=None, alias="isActive")
    activate_new_children: bool | None = Field(default=None, alias="activateNewChildren")
    data_owners: list[Grantee] | None = Field(default=None, alias="dataOwners", max_length=1000)
    infrastructure_admins: list[Grantee] | None = Field(default=None, alias="infrastructureAdmins", max_length=1000)


@dataclass(frozen=True)
class Overrides:
    """The settings set on one object itself (None: not set there)."""

    is_active: bool | None = None
    activate_new_children: bool | None = None
    data_owners: tuple[Grantee, ...] | None = None
    infrastructure_admins: tuple[Grantee, ...] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Overrides:
        def grantees(value: Any) -> tuple[Grantee, ...] | None:
            return None if value is None else tuple(Grantee.model_validate(g) for g in value)

        return cls(row["is_active"], row["activate_new_children"], grantees(row["data_owners"]),
                   grantees(row["infrastructure_admins"]))  # fmt: skip

    def value(self, name: SettingName) -> Any:
        return getattr(self, SETTING_ATTRIBUTES[name])

    @property
    def names(self) -> list[SettingName]:
        return [name for name in SETTING_NAMES if self.value(name) is not None]

    def changed(self, change: SettingsChange, *, at_root: bool) -> Overrides:
        """These overrides after `change`: lists replace at the connection and are added to below it."""

        def merged(current: tuple[Grantee, ...] | None, sent: list[Grantee] | None) -> tuple[Grantee, ...] | None:
            if sent is None:
                return current
            base = () if at_root or current is None else current
            return _union([base, sent])

        return Overrides(
            is_active=self.is_active if change.is_active is None else change.is_active,
            activate_new_children=(self.activate_new_children if change.activate_new_children is None
                                   else change.activate_new_children),
            data_owners=merged(self.data_owners, change.data_owners),
            infrastructure_admins=merged(self.infrastructure_admins, change.infrastructure_admins),
        )  # fmt: skip


NONE = Overrides()


def _union(lists: Iterable[Iterable[Grantee]]) -> tuple[Grantee, ...]:
    seen: dict[tuple[int, str], Grantee] = {}
    for grantees in lists:
        for grantee in grantees:
            seen.setdefault((grantee.id, grantee.type), grantee)
    return tuple(seen.values())


@dataclass(frozen=True)
class EffectiveSettings:
    is_active: bool
    activate_new_children: bool
    data_owners: tuple[Grantee, ...]
    infrastructure_admins: tuple[Grantee, ...]

    def value(self, name: SettingName) -> Any:
        return getattr(self, SETTING_ATTRIBUTES[name])


def effective(chain: Sequence[Overrides]) -> EffectiveSettings:
    """The settings of an object from the overrides along its lineage (root first, the object last)."""

    def nearest(values: Iterable[bool | None]) -> bool:
        found = [v for v in values if v is not None]
        return found[-1] if found else True

    return EffectiveSettings(
        is_active=nearest(o.is_active for o in chain),
        activate_new_children=nearest(o.activate_new_children for o in chain),
        data_owners=_union(o.data_owners or () for o in chain),
        infrastructure_admins=_union(o.infrastructure_admins or () for o in chain),
    )


def effective_of(key: str, overrides: Mapping[str, Overrides]) -> EffectiveSettings:
    return effective([overrides.get(k, NONE) for k in lineage(key)])


# ---- what a sync covers ---------------------------------------------------------------------


@dataclass(frozen=True)
class CrawlScope:
    """Which assets a sync lists and may change: those under `root`, and unless `force_recursive`, only
    active ones (an inactive subtree is neither listed nor changed). `active` maps object keys to their own
    isActive override."""

    root: str | None = None
    force_recursive: bool = False
    overrides: Mapping[str, bool] | None = None

    @property
    def everything(self) -> bool:
        skips_inactive = not self.force_recursive and any(v is False for v in (self.overrides or {}).values())
        return self.root in (None, ROOT) and not skips_inactive

    def covers(self, key: str) -> bool:
        if self.root and not in_subtree(key, self.root):
            return False
        if self.force_recursive or not self.overrides:
            return True
        return self._active(key)

    def _active(self, key: str) -> bool:
        overrides = self.overrides or {}
        probe: str | None = key
        while probe is not None:
            if probe in overrides:
                return overrides[probe]
            probe = parent_of(probe)
        return True
