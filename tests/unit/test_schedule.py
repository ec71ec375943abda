"""Schedule maths: cron in a time zone, intervals, and validation messages."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.core.model import Schedule


def test_cron_fires_at_the_next_matching_minute_in_utc():
    after = datetime(2026, 3, 1, 10, 17, tzinfo=UTC)
    assert Schedule(cron="*/15 * * * *").next_fire_time(after) == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)


def test_cron_is_evaluated_in_the_schedules_time_zone():
    # 03:00 in Berlin (UTC+1 in winter) is 02:00 UTC.
    after = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)
    schedule = Schedule(cron="0 3 * * *", timezone="Europe/Berlin")
    assert schedule.next_fire_time(after) == datetime(2026, 1, 10, 2, 0, tzinfo=UTC)


def test_interval_adds_to_the_previous_fire():
    after = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert Schedule(intervalSeconds=3600).next_fire_time(after) == datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


def test_with_cron_and_interval_the_earlier_wins():
    after = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    schedule = Schedule(cron="0 12 * * *", intervalSeconds=600)
    assert schedule.next_fire_time(after) == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def test_a_leap_day_cron_is_valid_and_fires_on_the_next_29_february():
    after = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert Schedule(cron="0 0 29 2 *").next_fire_time(after) == datetime(2028, 2, 29, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "needs 'cron' or 'intervalSeconds'"),
        ({"cron": "every day"}, "not a valid cron expression"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"intervalSeconds": 5}, "greater than or equal to 60"),
        ({"cron": "0 0 31 2 *"}, "'0 0 31 2 *' never fires"),
        ({"cron": "0 0 31 4 *", "intervalSeconds": 3600}, "'0 0 31 4 *' never fires"),
    ],
)
def test_invalid_schedules_are_refused_with_a_reason(body, fragment):
    with pytest.raises(ValidationError) as error:
        Schedule.model_validate(body)
    assert fragment in str(error.value)


def test_a_stored_schedule_is_read_back_even_if_it_no_longer_validates():
    # Written before validation existed, or its time zone left tzdata: reading it must not fail
    # (the API lists it, the scheduler reports the problem on the integration instead).
    zone_gone = Schedule.from_stored({"cron": "0 3 * * *", "timezone": "Mars/Olympus"})
    never_fires = Schedule.from_stored({"cron": "0 0 31 2 *"})
    assert zone_gone.timezone == "Mars/Olympus" and never_fires.cron == "0 0 31 2 *"
    with pytest.raises(ValueError, match="is not an IANA time zone"):
        zone_gone.next_fire_time(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="never fires"):
        never_fires.next_fire_time(datetime(2026, 1, 1, tzinfo=UTC))
