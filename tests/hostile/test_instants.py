"""Instants and dates at the edge of the calendar: one accepted range (the years 1900 to
2999, after any offset or zone), a 422 `date_out_of_range` outside it on every way in,
and the extreme accepted values round-trip through every route that reads them."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.conftest import User
from tests.dates import day
from tests.routes.support import assert_problem, create

#: What clients send for "no date", and values just outside the range.
OUTSIDE = [
    "0001-01-01T00:00:00Z",  # Go's zero time.Time
    "9999-12-31T23:59:59.999999Z",
    "1899-12-31T23:59:59.999999Z",
    "3000-01-01T00:00:00Z",
    "1900-01-01T00:30:00+01:00",  # 1899-12-31T23:30Z once the offset is applied
    "2999-12-31T20:00:00-05:00",  # 3000-01-01T01:00Z
    "0001-01-01T00:00",  # a local date-time
    "9999-12-31T23:59",
]
OUTSIDE_DAYS = ["0001-01-01", "1899-12-31", "3000-01-01", "9999-12-31"]
#: The first and last instants accepted.
FIRST = "1900-01-01T00:00:00Z"
LAST = "2999-12-31T23:59:59.999999Z"


def range_problem(response: Any, field: str) -> None:
    body = assert_problem(response, 422, "date_out_of_range")
    assert any(item["loc"][-1] == field for item in body["errors"]), body


@pytest.mark.parametrize("value", OUTSIDE)
@pytest.mark.parametrize("field", ["due_date", "remind_at"])
async def test_instants_outside_the_range_are_refused_on_create(
    alice: User, field: str, value: str
) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", field: value})
    range_problem(response, field)


@pytest.mark.parametrize("value", OUTSIDE_DAYS)
async def test_days_outside_the_range_are_refused(alice: User, value: str) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "due_date": value})
    range_problem(response, "due_date")


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31"])
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_updates_outside_the_range_are_refused(alice: User, method: str, value: str) -> None:
    task = await create(alice)
    response = await alice.request(method, f"/api/me/tasks/{task['id']}", json={"due_date": value})
    range_problem(response, "due_date")


async def test_batch_operations_outside_the_range_are_refused(alice: User) -> None:
    task = await create(alice)
    for operation in (
        {"op": "create", "data": {"title": "t", "remind_at": "0001-01-01T00:00:00Z"}},
        {"op": "update", "id": task["id"], "data": {"due_date": "9999-12-31T23:59:59Z"}},
    ):
        response = await alice.post("/api/me/tasks/batch", json={"operations": [operation]})
        assert_problem(response, 422, "date_out_of_range")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/me/tasks", {"due_before": "0001-01-01T00:00:00Z"}),
        ("/api/me/tasks", {"due_after": "9999-12-31"}),
        ("/api/me/reminders", {"until": "9999-12-31T23:59:59Z"}),
    ],
)
async def test_filters_outside_the_range_are_refused(
    alice: User, path: str, params: dict[str, str]
) -> None:
    response = await alice.get(path, params=params)
    assert_problem(response, 422, "date_out_of_range")


@pytest.mark.parametrize(
    ("zone", "field", "wall_time"),
    [
        # Local date-times are read in the profile's zone: these leave the range only then.
        ("America/Los_Angeles", "remind_at", "2999-12-31T20:00"),
        ("America/Los_Angeles", "due_date", "2999-12-31T23:30"),
        ("Asia/Tokyo", "remind_at", "1900-01-01T05:00"),
        ("Asia/Tokyo", "due_date", "1900-01-01T08:59"),
    ],
)
async def test_local_times_that_leave_the_range_in_the_profiles_zone_are_refused(
    alice: User, zone: str, field: str, wall_time: str
) -> None:
    assert (await alice.patch("/api/me", json={"timezone": zone})).status_code == 200
    response = await alice.post("/api/me/tasks", json={"title": "t", field: wall_time})
    assert_problem(response, 422, "date_out_of_range")
    task = await create(alice)
    response = await alice.patch(f"/api/me/tasks/{task['id']}", json={field: wall_time})
    assert_problem(response, 422, "date_out_of_range")
    for operation in (
        {"op": "create", "data": {"title": "t", field: wall_time}},
        {"op": "update", "id": task["id"], "data": {field: wall_time}},
    ):
        response = await alice.post("/api/me/tasks/batch", json={"operations": [operation]})
        assert_problem(response, 422, "date_out_of_range")


@pytest.mark.parametrize("rule", ["FREQ=DAILY;UNTIL=99991231", "FREQ=DAILY;UNTIL=00010101T000000Z"])
async def test_a_rules_until_outside_the_range_is_refused(alice: User, rule: str) -> None:
    response = await alice.post(
        "/api/me/tasks", json={"title": "t", "due_date": day(1), "recurrence": rule}
    )
    assert_problem(response, 422, "recurrence_invalid")


@pytest.mark.parametrize(
    "due", ["2999-12-31", "2999-12-31T23:00:00Z", "2999-12-31T23:59:59.999999Z"]
)
async def test_a_series_reaching_the_end_of_the_range_ends_there(alice: User, due: str) -> None:
    task = await create(alice, due_date=due, recurrence="FREQ=DAILY", remind_at=LAST)
    response = await alice.patch(f"/api/me/tasks/{task['id']}/complete")
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert response.json()["next_occurrence_id"] is None


async def test_a_series_whose_next_reminder_would_leave_the_range_ends(alice: User) -> None:
    # The reminder follows the due date by a day: the next one would be in 3000.
    task = await create(
        alice, due_date="2999-12-30", recurrence="FREQ=DAILY", remind_at="2999-12-31T12:00:00Z"
    )
    response = await alice.patch(f"/api/me/tasks/{task['id']}/complete")
    assert response.status_code == 200, response.text
    assert response.json()["next_occurrence_id"] is None


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("due_at", "'infinity'"),
        ("due_at", "'-infinity'"),
        ("remind_at", "'0001-01-01T00:00:00Z'"),
        ("remind_at", "'9999-12-31T23:59:59Z'"),
        ("due_date", "'infinity'"),
        ("due_date", "'0001-01-01'"),
        ("due_sort_at", "'infinity'"),
    ],
)
async def test_the_database_refuses_out_of_range_values_from_any_writer(
    alice: User, owner_conn: asyncpg.Connection, column: str, value: str
) -> None:
    # Reading is safe because no stored value can be outside the range: not even one
    # written by hand, as the table owner.
    task = await create(alice, due_date=day(1) if column != "due_date" else None)
    clear = "due_date = NULL, " if column == "due_at" else ""
    sort = ", due_sort_at = now()" if column not in {"remind_at", "due_sort_at"} else ""
    statement = f"UPDATE tasks SET {clear}{column} = {value}{sort} WHERE id = $1"
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", alice.id)
        with pytest.raises(asyncpg.CheckViolationError):
            await owner_conn.execute(statement, task["id"])
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).json() == task
