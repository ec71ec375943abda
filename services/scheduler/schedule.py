"""Schedule maths (pure): when an integration's schedule next fires."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from services.core.model import Schedule


def next_fire_time(schedule: Schedule, after: datetime) -> datetime:
    """The first fire strictly after `after` (aware datetime); with cron and interval, the earlier wins."""
    candidates: list[datetime] = []
    if schedule.cron:
        local = after.astimezone(ZoneInfo(schedule.timezone))
        candidates.append(croniter(schedule.cron, local).get_next(datetime).astimezone(after.tzinfo))
    if schedule.interval_seconds:
        candidates.append(after + timedelta(seconds=schedule.interval_seconds))
    return min(candidates)
