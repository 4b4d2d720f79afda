"""Dates for tests, counted in days from the day the test run started, so that no test
depends on the calendar date it runs on.

`day(1)` is tomorrow as an ISO date, `at(1, "08:00")` tomorrow at 08:00 UTC spelled as the
API returns it, `moment(1, 8)` the same instant as a datetime. "Today" is the UTC date of
the service's clock (`todo_api.services.clock`) when the suite started, read once: all
dates of a run agree with each other even when the run crosses midnight, and a test that
needs a date on one side of "now" keeps a margin of at least a day from it.

Tests about one particular day (a daylight-saving change, a weekday, the end of a month)
keep a fixed date instead; where the service reads the clock in such a test, the test
freezes it (`tests.routes.support.frozen_now`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from todo_api.services import clock

TODAY: date = clock.now().astimezone(UTC).date()


def day(days: int = 0) -> str:
    """The ISO date `days` days after today ("2027-03-04")."""
    return (TODAY + timedelta(days=days)).isoformat()


def compact(days: int = 0) -> str:
    """That date as an RRULE's UNTIL spells it ("20270304")."""
    return day(days).replace("-", "")


def at(days: int, time_of_day: str = "00:00", offset: str = "Z") -> str:
    """That date at `time_of_day` ("HH:MM[:SS[.ffffff]]"), with the UTC `offset` as
    written ("Z", "+01:00", or "" for a naive time): "2027-03-04T08:00:00Z"."""
    return f"{day(days)}T{time.fromisoformat(time_of_day).isoformat()}{offset}"


def moment(days: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    """That date at that time of day in UTC, as an aware datetime."""
    wall = time(hour, minute, second, micro)
    return datetime.combine(TODAY + timedelta(days=days), wall, UTC)
