"""How times, durations and statuses read on the console's pages (jinja filters: pure, unit-tested)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.core.model import Schedule


def duration(seconds: float) -> str:
    """'850 ms', '42 s', '3 min 05 s', '2 h 07 min'."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def age(at: datetime | None, now: datetime | None = None) -> str:
    """How long ago: 'just now', '5 min ago', '3 h ago', '2 d ago'."""
    if at is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def run_duration(started: datetime | None, completed: datetime | None, now: datetime | None = None) -> str:
    """A finished run's duration, or how long an unfinished one has been running."""
    if started is None:
        return ""
    return duration(((completed or now or datetime.now(UTC)) - started).total_seconds())


def when(at: datetime | None) -> str:
    """A timestamp in UTC to the second (the page states the zone once)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def next_fire(schedule: Schedule | None, now: datetime | None = None) -> datetime | None:
    """When the schedule fires next; None without one, or when it cannot be evaluated (the page shows why)."""
    if schedule is None:
        return None
    try:
        return schedule.next_fire_time(now or datetime.now(UTC))
    except ValueError:
        return None


def schedule_text(schedule: Schedule | None) -> str:
    if schedule is None:
        return ""
    parts = []
    if schedule.cron:
        parts.append(f"cron {schedule.cron} ({schedule.timezone})")
    if schedule.interval_seconds:
        parts.append(f"every {duration(schedule.interval_seconds)}")
    return " or ".join(parts)


def event_name(event_type: str) -> str:
    """'run.assets_changed.v1' -> 'assets changed'."""
    return event_type.removeprefix("run.").rsplit(".v", 1)[0].replace("_", " ")


def details(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def in_future(at: datetime | None) -> str:
    """'in 5 min', for a time ahead."""
    if at is None:
        return ""
    seconds = (at - datetime.now(UTC)).total_seconds()
    return "due now" if seconds < 1 else "in " + duration(seconds)


FILTERS: dict[str, Callable[..., Any]] = {
    "age": age, "duration": duration, "run_duration": run_duration, "when": when, "next_fire": next_fire,
    "schedule_text": schedule_text, "event_name": event_name, "details": details, "in_future": in_future,
}  # fmt: skip
