"""How the console shows durations, ages, schedules and event names; and its session cookies' sealing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from unittest import mock

from cryptography.fernet import Fernet

from services.console import format
from services.console.session import SessionCipher
from services.console.settings import ConsoleSettings
from services.core.model import Schedule

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_durations_read_at_the_scale_they_have() -> None:
    assert [format.duration(s) for s in (0.25, 4.04, 42, 185, 7620)] == [
        "250 ms", "4.0 s", "42 s", "3 min 05 s", "2 h 07 min",
    ]  # fmt: skip


def test_ages_and_run_durations() -> None:
    assert format.age(NOW - timedelta(seconds=3), NOW) == "just now"
    assert format.age(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert format.age(NOW - timedelta(days=2, hours=1), NOW) == "2 d ago"
    assert format.run_duration(NOW - timedelta(seconds=30), NOW) == "30 s"
    assert format.run_duration(NOW - timedelta(seconds=90), None, NOW) == "1 min 30 s"  # still running
    assert format.run_duration(None, None, NOW) == ""


def test_the_next_fire_of_a_schedule_is_the_earlier_of_cron_and_interval() -> None:
    schedule = Schedule(cron="0 3 * * *", timezone="UTC", intervalSeconds=3600)
    assert format.next_fire(schedule, NOW) == NOW + timedelta(hours=1)
    assert format.schedule_text(schedule) == "cron 0 3 * * * (UTC) or every 1 h 00 min"
    assert format.next_fire(None, NOW) is None


def test_event_names_drop_the_prefix_and_version() -> None:
    assert format.event_name("run.assets_changed.v1") == "assets changed"


def test_a_session_opens_only_with_its_own_key_unaltered_and_in_time() -> None:
    cipher = SessionCipher(ConsoleSettings(CONSOLE_SESSION_KEY=Fernet.generate_key().decode(), CONSOLE_SESSION_HOURS=1))
    value, csrf = cipher.seal("icp_secret-key")
    assert "icp_secret" not in value
    assert cipher.open(value) == ("icp_secret-key", csrf)
    # Tampered: a character in the middle (near the end, one that only carries base64 padding bits could change
    # nothing: "...A=" and "...B=" can decode to the same bytes).
    middle = len(value) // 2
    assert cipher.open(value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]) is None
    assert SessionCipher(ConsoleSettings()).open(value) is None  # another key (a random one per process)
    with mock.patch("time.time", return_value=time.time() + 3601):
        assert cipher.open(value) is None  # older than the session's lifetime
