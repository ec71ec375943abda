"""Schedule maths: cron in a time zone, intervals, and validation messages."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.core.model import Schedule
from services.scheduler.schedule import next_fire_time


def test_cron_fires_at_the_next_matching_minute_in_utc():
    after = datetime(2026, 3, 1, 10, 17, tzinfo=UTC)
    assert next_fire_time(Schedule(cron="*/15 * * * *"), after) == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)


def test_cron_is_evaluated_in_the_schedules_time_zone():
    # 03:00 in Berlin (UTC+1 in winter) is 02:00 UTC.
    after = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    schedule = Schedule(cron="0 3 * * *", timezone="Europe/Berlin")
    assert next_fire_time(schedule, after) == datetime(2026, 1, 10, 2, 0, tzinfo=UTC)


def test_interval_adds_to_the_previous_fire():
    after = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert next_fire_time(Schedule(intervalSeconds=3600), after) == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


def test_with_cron_and_interval_the_earlier_wins():
    after = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    schedule = Schedule(cron="0 12 * * *", intervalSeconds=600)
    assert next_fire_time(schedule, after) == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "needs 'cron' or 'intervalSeconds'"),
        ({"cron": "every day"}, "not a valid cron expression"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"intervalSeconds": 5}, "greater than or equal to 60"),
    ],
)
def test_invalid_schedules_are_refused_with_a_reason(body, fragment):
    with pytest.raises(ValidationError) as error:
        Schedule.model_validate(body)
    assert fragment in str(error.value)
