"""The first and last dates and instants the API accepts round-trip through every route
that reads or rewrites a task, in the zones furthest east and west (the refusals outside
the range are in `tests/hostile/test_instants.py`)."""

from __future__ import annotations

import pytest

from tests.conftest import User
from tests.routes.support import assert_problem, create

FIRST = "1900-01-01T00:00:00Z"
LAST = "2999-12-31T23:59:59.999999Z"


@pytest.mark.parametrize(
    "fields",
    [
        {"due_date": FIRST, "remind_at": FIRST},
        {"due_date": LAST, "remind_at": LAST},
        {"due_date": "1900-01-01", "remind_at": FIRST},
        {"due_date": "2999-12-31", "remind_at": LAST},
    ],
    ids=["first-instant", "last-instant", "first-day", "last-day"],
)
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
async def test_the_extreme_accepted_values_round_trip_through_every_route(
    alice: User, zone: str, fields: dict[str, str]
) -> None:
    assert (await alice.patch("/api/me", json={"timezone": zone})).status_code == 200
    task = await create(alice, **fields)
    assert {k: task[k] for k in fields} == fields
    url = f"/api/me/tasks/{task['id']}"

    read = await alice.get(url)
    assert read.status_code == 200 and read.json() == task
    for params in ({"sort": "due_date"}, {"sort": "due_date", "order": "desc"}, {"limit": 1}):
        page = await alice.get("/api/me/tasks", params=params)
        assert page.status_code == 200, page.text
    changes = await alice.get("/api/me/changes")
    assert changes.status_code == 200, changes.text
    reminders = await alice.get("/api/me/reminders", params={"until": LAST})
    assert reminders.status_code == 200, reminders.text
    assert task["id"] in [t["id"] for t in reminders.json()]

    stale = await alice.patch(url, json={"title": "stale"}, headers={"If-Match": '"999"'})
    current = assert_problem(stale, 412, "version_mismatch")["current"]
    assert {k: current[k] for k in fields} == fields
    moved = await alice.post(f"{url}/move", json={})
    assert moved.status_code == 200, moved.text
    dismissed = await alice.post(f"/api/me/reminders/{task['id']}/dismiss")
    assert dismissed.status_code == 200, dismissed.text
    batch = await alice.post(
        "/api/me/tasks/batch",
        json={"operations": [{"op": "update", "id": task["id"], "data": {"title": "b"}}]},
    )
    assert batch.status_code == 200, batch.text
    final = await alice.get(url)
    assert {k: final.json()[k] for k in fields} == fields
