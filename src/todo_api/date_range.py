"""The one range of dates and instants the service accepts, stores and returns.

Every date and instant a client sends (due dates, reminders, filters, a rule's UNTIL)
must fall in the years 1900 to 2999, checked after any offset or time zone is applied:
an instant from 1900-01-01T00:00:00Z up to, not including, 3000-01-01T00:00:00Z; a day
from 1900-01-01 to 2999-12-31. Clients' sentinels for "no date" (Go's zero time
0001-01-01, 9999-12-31) are refused rather than stored, so every stored value can be
shifted into any zone and a day either way without leaving what Python and PostgreSQL
can both represent. The database holds the same bounds as CHECK constraints.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)
#: The first instant accepted, and the first one past the range.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
END = datetime(3000, 1, 1, tzinfo=UTC)
#: How error messages and the API description state the range.
RANGE_TEXT = "in the years 1900 to 2999 (UTC)"
RANGE_ERROR = "date_out_of_range"


def date_in_range(value: date) -> bool:
    """Whether a day is one the service accepts."""
    return EARLIEST_DATE <= value <= LATEST_DATE


def instant_in_range(value: datetime) -> bool:
    """Whether an aware instant is one the service accepts."""
    return EARLIEST <= value < END


def wall_time_in_range(value: datetime) -> bool:
    """Whether a naive wall-clock time lies in the range before its zone is applied (the
    database applies the zone, and its constraints catch the last hours at either end)."""
    return EARLIEST.replace(tzinfo=None) <= value < END.replace(tzinfo=None)
