"""Recurrence rules without the database: parsing limits and the next dates."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from todo_api.services.recurrence import RuleError, next_occurrence, normalize_rule


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=WEEKLY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=MONTHLY;BYDAY=1MO;BYMONTHDAY=15",
    ],
)
def test_rules_that_never_happen_are_refused_quickly(rule: str) -> None:
    started = time.perf_counter()
    with pytest.raises(RuleError, match="never occurs"):
        normalize_rule(rule)
    assert time.perf_counter() - started < 1.0


def test_next_occurrence_of_a_series_at_the_edge_of_the_calendar_ends_it() -> None:
    assert (
        next_occurrence(
            "FREQ=YEARLY",
            due_date=date(2999, 6, 1),
            due_at=None,
            zone_name="UTC",
            repeat_from="due",
            completed_at=datetime(2026, 1, 1, tzinfo=UTC),
            remind_at=None,
        )
        is None
    )


def test_until_given_as_a_utc_instant_is_compared_in_the_profile_zone() -> None:
    # UNTIL 2026-12-02T07:59:59Z is 08:59:59 in Berlin: the 09:00 occurrence is past it.
    following = next_occurrence(
        "FREQ=DAILY;UNTIL=20261202T075959Z",
        due_date=None,
        due_at=datetime(2026, 12, 1, 8, tzinfo=UTC),
        zone_name="Europe/Berlin",
        repeat_from="due",
        completed_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        remind_at=None,
    )
    assert following is None


def test_a_stored_rule_with_an_until_past_the_range_still_runs() -> None:
    # New rules must end by 2999; one stored before that rule existed keeps its series.
    with pytest.raises(RuleError, match="UNTIL"):
        normalize_rule("FREQ=DAILY;UNTIL=99991231")
    following = next_occurrence(
        "FREQ=DAILY;UNTIL=99991231",
        due_date=date(2027, 3, 1),
        due_at=None,
        zone_name="Europe/Paris",
        repeat_from="due",
        completed_at=datetime(2027, 3, 1, tzinfo=UTC),
        remind_at=None,
    )
    assert following is not None and following.due_date == date(2027, 3, 2)
