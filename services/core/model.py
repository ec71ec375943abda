"""Domain entities and value objects: integrations, schedules, principals (who is calling)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# A leading '_' or '-' is allowed because every Immuta connection key (`^[A-Za-z0-9_-]{1,128}$`) is an externalId.
EXTERNAL_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
EXTERNAL_ID_RULE = "1-128 characters: letters, digits, '.', '_' or '-', not starting with '.'"


def _check_external_id(value: str) -> str:
    if not EXTERNAL_ID_PATTERN.match(value):
        raise ValueError(f"externalId must be {EXTERNAL_ID_RULE}")
    return value


ExternalId = Annotated[str, AfterValidator(_check_external_id)]


class Source(StrEnum):
    SNOWFLAKE = "snowflake"
    DATABRICKS = "databricks"
    BIGQUERY = "bigquery"
    POSTGRES = "postgres"
    MYSQL = "mysql"
    MARIADB = "mariadb"
    MSSQL = "mssql"
    GLUE = "glue"
    ALATION = "alation"
    FABRIC = "fabric"
    POWERBI = "powerbi"
    # Beyond the Entropy enum: platforms we crawl that it does not name.
    TRINO = "trino"
    KAFKA = "kafka"
    SQLITE = "sqlite"
    DUCKDB = "duckdb"
    # Synced by uploads (Secoda's custom integrations: CSV/JSONL metadata; dbt Core artifacts), not crawled.
    CUSTOM = "custom"
    DBT_CORE = "dbt_core"


class Permission(StrEnum):
    INGESTION_VIEW = "INGESTION_VIEW"
    INGESTION_EDIT = "INGESTION_EDIT"


class Schedule(BaseModel):
    """When an integration runs by itself: a cron expression, a fixed interval, or both (earliest wins)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    cron: str | None = None
    interval_seconds: int | None = Field(default=None, alias="intervalSeconds", ge=60, le=366 * 86400)
    timezone: str = "UTC"

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> Schedule:
        """A schedule read back from the database: checked for shape only.

        It was fully checked when written, but what the checks depend on can change since (tzdata, the
        cron library); reading it must not fail, the scheduler reports the problem on the integration."""
        return cls.model_validate(data, context={_STORED: True})

    def next_fire_time(self, after: datetime) -> datetime:
        """The first fire strictly after `after` (aware datetime); with cron and interval, the earlier wins.

        Raises ValueError when the cron expression never matches or the time zone is unknown."""
        candidates: list[datetime] = []
        if self.cron:
            local = after.astimezone(_zone(self.timezone))
            try:
                candidates.append(croniter(self.cron, local).get_next(datetime).astimezone(after.tzinfo))
            except CroniterError:  # e.g. '0 0 31 2 *': no 31 February within croniter's search horizon
                raise ValueError(
                    f"'{self.cron}' never fires: no date matches its day-of-month, month and day-of-week fields"
                ) from None
        if self.interval_seconds:
            candidates.append(after + timedelta(seconds=self.interval_seconds))
        return min(candidates)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _stored(info) and not croniter.is_valid(value):
            raise ValueError(f"'{value}' is not a valid cron expression (5 fields, e.g. '0 3 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str, info: ValidationInfo) -> str:
        if not _stored(info):
            _zone(value)
        return value

    @model_validator(mode="after")
    def _fires(self, info: ValidationInfo) -> Schedule:
        if self.cron is None and self.interval_seconds is None:
            raise ValueError("a schedule needs 'cron' or 'intervalSeconds'")
        if not _stored(info):
            # Computing the next fire is the only complete check: a valid-looking cron can match no date.
            self.next_fire_time(datetime.now(UTC))
        return self


_STORED = "stored"


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(_STORED))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory ('America'), a too-long name
        raise ValueError(f"'{name}' is not an IANA time zone (e.g. 'Europe/Berlin')") from None


@dataclass(frozen=True)
class Integration:
    id: uuid.UUID
    external_id: str
    name: str
    source: Source
    enabled: bool
    owning_team_id: uuid.UUID | None
    owning_team_external_id: str | None
    configuration: dict[str, Any]
    schedule: Schedule | None
    has_credentials: bool
    created_at: datetime
    updated_at: datetime
    fail_safe_threshold: float = 20.0
    schedule_error: str | None = None  # why the scheduler cannot evaluate the schedule, if it cannot
    number: int = 0  # a small integer id (Immuta's nativeIntegrationId)
    created_by: str | None = None  # principal ids; None: the system
    updated_by: str | None = None
    health: Health | None = None  # the last connection validation
    last_sync: Health | None = None  # how the last finished sync ended (SUCCESS or FAILED)

    @property
    def state(self) -> ConnectionState:
        """INACTIVE when disabled; UNHEALTHY when the more recent of validation and sync failed; else ACTIVE."""
        if not self.enabled:
            return ConnectionState.INACTIVE
        known = [h for h in (self.health, self.last_sync) if h is not None]
        latest = max(known, key=lambda h: h.at) if known else None
        return ConnectionState.UNHEALTHY if latest is not None and not latest.ok else ConnectionState.ACTIVE


class ConnectionState(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class Health:
    ok: bool
    at: datetime
    message: str | None = None


@dataclass(frozen=True)
class Principal:
    """The caller, resolved from its API key."""

    key_id: uuid.UUID
    name: str
    org_owner: bool
    team_permissions: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    number: int = 0  # the key's small integer id: Immuta's dialects show principals as integers

    @property
    def principal_id(self) -> str:
        return str(self.number)

    @property
    def team_ids(self) -> list[uuid.UUID]:
        return list(self.team_permissions)

    def can_view(self, owning_team_id: uuid.UUID | None) -> bool:
        # An integration without an owning team belongs to the organization: only its owners see it.
        if self.org_owner:
            return True
        return owning_team_id is not None and owning_team_id in self.team_permissions

    @property
    def edits_any_team(self) -> bool:
        return any(Permission.INGESTION_EDIT in permissions for permissions in self.team_permissions.values())

    def can_edit(self, owning_team_id: uuid.UUID | None) -> bool:
        if self.org_owner:
            return True
        if owning_team_id is None:
            return False
        return Permission.INGESTION_EDIT in self.team_permissions.get(owning_team_id, frozenset())
